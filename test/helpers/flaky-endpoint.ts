import { createHash } from 'node:crypto';
import type { TestContext } from 'node:test';
import { serve } from './receiver.js';

/**
 * An endpoint for the ordering tests: answers 500 to the first attempt of one delivery in five
 * (chosen by its id), 200 otherwise; keeps the updates it accepted first, in order, per entity.
 */
export async function flakyEndpoint(t: TestContext) {
  const seen = new Set<string>();
  const accepted = new Map<string, number[]>(); // entity → update numbers, in the order accepted
  const firstAccepted = new Set<string>();
  const { url } = await serve(t, (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const id = String(req.headers['x-blue-delivery']);
      const first = !seen.has(id);
      seen.add(id);
      if (first && createHash('sha256').update(id).digest()[0]! % 5 === 0) {
        res.writeHead(500).end();
        return;
      }
      const { currentValue } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (!firstAccepted.has(id)) {
        // A delivery accepted again (at least once) is a duplicate, not a new position.
        firstAccepted.add(id);
        const list = accepted.get(currentValue.id) ?? [];
        list.push(currentValue.update);
        accepted.set(currentValue.id, list);
      }
      res.writeHead(200).end();
    });
  });
  return { url: `${url}/hook`, accepted, count: () => firstAccepted.size };
}
