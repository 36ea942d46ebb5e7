import { z } from 'zod';
import { defineRoute } from '../platform/http/route';

const noticeSummary = z.object({
  version: z.string(),
  effectiveAt: z.iso.datetime(),
  sha256: z.string(),
  material: z.boolean(),
  materialFor: z.array(z.string()).describe('Purposes for which older opt-ins stop counting'),
});

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
    tag: 'notices',
    params: z.strictObject({ version: z.string() }),
    responses: { 200: { description: 'The notice', schema: noticeSummary.extend({ text: z.string() }) } },
    problems: [404],
  }),
};
