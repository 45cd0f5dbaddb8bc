// Real answers checked against docs/openapi.yaml with Ajv (JSON Schema 2020-12, the dialect of
// OpenAPI 3.1): the schema of the documented response for that route, method and status.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';

const DOC = path.resolve(import.meta.dirname, '../../docs/openapi.yaml');

// biome-ignore lint/suspicious/noExplicitAny: a parsed YAML document, walked key by key
type Node = Record<string, any>;

export interface OpenApiChecker {
  /** Throws, saying why, unless `body` is what the document says `template` answers with `status`. */
  check(template: string | null, method: string, status: number, body: unknown): void;
}

export function openApiChecker(): OpenApiChecker {
  const doc = parse(fs.readFileSync(DOC, 'utf8')) as Node;
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats.default(ajv);
  ajv.addSchema(doc, 'openapi');
  const deref = (n: Node): Node => (typeof n.$ref === 'string' ? deref(pointer(doc, n.$ref)) : n);
  return {
    check(template, method, status, body) {
      // A route the document does not have is a 404, and a method it does not list a 405, each with an Error.
      const item = template === null ? undefined : doc.paths?.[template];
      const operation = item?.[method.toLowerCase()];
      let schemaRef: string;
      if (operation === undefined) {
        const expected = item === undefined ? 404 : 405;
        if (status !== expected)
          throw new Error(`${method} ${template ?? 'an unknown route'} answered ${status}, not ${expected}`);
        schemaRef = 'openapi#/components/schemas/Error';
      } else {
        const responses = deref(operation).responses;
        const response = responses?.[String(status)];
        if (!response) throw new Error(`${method} ${template}: ${status} is not a documented answer`);
        const at =
          typeof response.$ref === 'string'
            ? response.$ref.slice(1)
            : `/paths/${pointerEscape(template!)}/${method.toLowerCase()}/responses/${status}`;
        schemaRef = `openapi#${at}/content/application~1json/schema`;
      }
      const validate = ajv.getSchema(schemaRef) ?? ajv.compile({ $ref: schemaRef });
      if (!validate(body)) {
        throw new Error(
          `${method} ${template} ${status}: ${ajv.errorsText(validate.errors)} in ${JSON.stringify(body).slice(0, 300)}`,
        );
      }
    },
  };
}

const pointerEscape = (s: string) => s.replaceAll('~', '~0').replaceAll('/', '~1');

function pointer(doc: Node, ref: string): Node {
  return ref
    .slice(2)
    .split('/')
    .reduce((n: Node, k) => n[k.replaceAll('~1', '/').replaceAll('~0', '~')], doc);
}
