// A webhook receiver that verifies X-Blue-Signature (Blue's scheme) with node:crypto only.
//
//   WEBHOOK_SECRET=... PORT=3000 node node-crypto.mjs
//
// X-Blue-Signature is the hex HMAC-SHA256 of the exact body bytes, keyed with the secret string.
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';

const secret = process.env.WEBHOOK_SECRET ?? '';

function valid(body, signature) {
  const expected = Buffer.from(createHmac('sha256', secret).update(body).digest('hex'));
  const given = Buffer.from(String(signature ?? ''));
  return given.length === expected.length && timingSafeEqual(given, expected); // constant time
}

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks); // the exact bytes: never re-serialise before verifying
      if (!valid(body, req.headers['x-blue-signature'])) {
        console.log(JSON.stringify({ verified: false, id: req.headers['x-blue-delivery'] }));
        res.writeHead(401).end();
        return;
      }
      const { event } = JSON.parse(body.toString('utf8'));
      console.log(JSON.stringify({ verified: true, id: req.headers['x-blue-delivery'], event }));
      res.writeHead(204).end();
    });
  })
  .listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1', function () {
    console.log(JSON.stringify({ listening: this.address().port }));
  });
