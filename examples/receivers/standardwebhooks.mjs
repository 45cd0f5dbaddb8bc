// A webhook receiver that verifies the Standard Webhooks headers with the official package.
//
//   npm install standardwebhooks
//   WEBHOOK_SECRET=whsec_... PORT=3000 node standardwebhooks.mjs
//
// A "whsec_<base64>" secret is read the libraries' usual way; any other secret is a raw key
// (its UTF-8 bytes), which is how blue-webhooks signs with it. During a secret rotation the
// service sends two signatures, so a receiver still on the previous secret verifies too.
import http from 'node:http';
import { Webhook } from 'standardwebhooks';

const secret = process.env.WEBHOOK_SECRET ?? '';
const webhook = secret.startsWith('whsec_') ? new Webhook(secret) : new Webhook(Buffer.from(secret, 'utf8'), { format: 'raw' });

http
  .createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8'); // the exact bytes: never re-serialise before verifying
      let payload;
      try {
        payload = webhook.verify(body, req.headers); // checks the signature and the timestamp (5 minutes)
      } catch (err) {
        // Why, in the library's words ("No matching signature found", "Message timestamp too old").
        console.log(JSON.stringify({ verified: false, id: req.headers['webhook-id'], reason: err.message }));
        res.writeHead(401).end();
        return;
      }
      // De-duplicate on webhook-id: a delivery can arrive more than once.
      console.log(JSON.stringify({ verified: true, id: req.headers['webhook-id'], event: payload.event }));
      res.writeHead(204).end();
    });
  })
  .listen(Number(process.env.PORT ?? 3000), process.env.HOST ?? '127.0.0.1', function () {
    console.log(JSON.stringify({ listening: this.address().port }));
  });
