import { z } from 'zod';
import { defineRoute } from '../platform/http/route';

const noticeSummary = z.object({
  version: z.string(),
  effectiveAt: z.iso.datetime(),
  sha256: z.string(),
  material: z.boolean(),
  materialFor: z.array(z.string()).describe('Purposes for which older opt-ins stop counting'),
});

/** What `GET /v1/notices/{version}` answers in, by `Accept`: JSON first, the default. */
export const NOTICE_MEDIA_TYPES = ['application/json', 'text/plain', 'text/html'] as const;

export const noticeRoutes = {
  list: defineRoute({
    method: 'get',
    path: '/v1/notices',
    operationId: 'listNotices',
    summary: 'Notice versions, and the one in force',
    tag: 'notices',
    responses: {
      200: {
        description: 'Every version, in effective order',
        schema: z.object({ current: z.string().nullable(), versions: z.array(noticeSummary) }),
      },
    },
  }),
  get: defineRoute({
    method: 'get',
    path: '/v1/notices/{version}',
    operationId: 'getNotice',
    summary: 'One notice version with its text',
    description:
      'By `Accept`: JSON (the default), `text/plain` (the Markdown text exactly: its SHA-256 is `sha256`) or ' +
      '`text/html` (the text rendered, as an HTML fragment: one `article` element). Anything else is 406.',
    tag: 'notices',
    params: z.strictObject({ version: z.string() }),
    responses: {
      200: {
        description: 'The notice',
        schema: noticeSummary.extend({ text: z.string() }),
        alternatives: {
          'text/plain': 'The Markdown text, byte for byte the text whose SHA-256 is `sha256`',
          'text/html': 'The text rendered: an `article` element carrying data-version, data-effective-at, data-sha256',
        },
        headers: { Vary: 'Accept' },
      },
    },
    problems: [404, 406],
  }),
};
