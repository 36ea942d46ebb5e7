import { defineRoute } from '../platform/http/route';
import {
  batchRequestSchema,
  batchResponseSchema,
  decisionRequestSchema,
  decisionResponseSchema,
  FILTER_TRAILERS,
  filterQuerySchema,
  recipientsResponseSchema,
} from './decision.contract';

export const decisionRoutes = {
  recipients: defineRoute({
    method: 'get',
    path: '/v1/recipients',
    operationId: 'listRecipients',
    summary: 'The recipient registry: whom data may be sold or disclosed to, or who may access it',
    description:
      'A request for a purpose that names its recipient gives one of these ids; a subscriber opts in for named ' +
      'recipients.',
    tag: 'decisions',
    scopes: ['decisions'],
    responses: { 200: { description: 'Every registered recipient', schema: recipientsResponseSchema } },
  }),
  decide: defineRoute({
    method: 'post',
    path: '/v1/decisions',
    operationId: 'decide',
    summary: "May this account's data be used for this purpose?",
    description: 'Allowed only if every category is; a deny names the reason per category.',
    tag: 'decisions',
    scopes: ['decisions'],
    body: { schema: decisionRequestSchema, limit: 64 * 1024 },
    responses: { 200: { description: 'The decision', schema: decisionResponseSchema } },
  }),
  decideBatch: defineRoute({
    method: 'post',
    path: '/v1/decisions/batch',
    operationId: 'decideBatch',
    summary: 'The same question for up to 10,000 accounts',
    tag: 'decisions',
    scopes: ['decisions'],
    // 10,000 account ids of up to 64 characters fit in 1 MB; 2 MB leaves room for the rest.
    body: { schema: batchRequestSchema, limit: 2 * 1024 * 1024 },
    responses: { 200: { description: 'One result per account, in request order', schema: batchResponseSchema } },
  }),
  filter: defineRoute({
    method: 'post',
    path: '/v1/filter',
    operationId: 'filterRecords',
    summary: 'NDJSON records in, only what may be used out, streamed',
    description:
      'Each account judged is audited. Lines without a valid account id are never passed on. Without a schema, a ' +
      'record passes whole, byte for byte, if every declared category is allowed. With one, each field is judged ' +
      'by the category the schema maps it to: a record passes byte for byte when nothing is removed, re-serialised ' +
      'canonically (keys sorted) when fields are (redact), or not at all (drop); unclassified fields are removed. ' +
      'A failure after the first record cuts the response, so a partial stream cannot pass for a complete one. ' +
      'The body may be sent with Content-Encoding gzip, deflate or br.',
    tag: 'decisions',
    scopes: ['decisions'],
    query: filterQuerySchema,
    stream: {
      contentTypes: ['application/x-ndjson', 'application/jsonl', 'application/json', 'text/plain'],
      description: 'One JSON object per line',
    },
    responses: {
      200: {
        description: 'The records that may be used (redacted where fields were removed); counts as HTTP trailers',
        contentType: 'application/x-ndjson',
        headers: { trailer: FILTER_TRAILERS },
      },
    },
  }),
};
