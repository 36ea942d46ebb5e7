import path from 'node:path';
import type { Request, Response } from 'express';
import { marked } from 'marked';
import nunjucks from 'nunjucks';
import type { Brand } from '../config/brand';
import { type Messages, type Translate, translator } from '../config/messages';
import { projectRoot } from '../config/project-root';

/**
 * Server-rendered pages (the portal's; the console's, from `views`): nunjucks with autoescape on (every value is
 * escaped unless a template says `| safe`, which only the notice text, from config/, does), and every word from the
 * message catalog of the negotiated language.
 */
export function createViews(messages: Messages, brand: Brand, views = 'src/portal/views') {
  // Templates are read from the source tree in development and in the image alike (the Dockerfile copies them).
  const env = new nunjucks.Environment(new nunjucks.FileSystemLoader(path.join(projectRoot(), views)), {
    autoescape: true,
    throwOnUndefined: true,
    trimBlocks: true,
    lstripBlocks: true,
  });
  type Formats = { date: Intl.DateTimeFormat; dateTime: Intl.DateTimeFormat; time: Intl.DateTimeFormat };
  const formats = new Map<string, Formats & { and: Intl.ListFormat }>();
  const formatsFor = (lang: string) => {
    let f = formats.get(lang);
    if (!f) {
      f = {
        date: new Intl.DateTimeFormat(lang, { dateStyle: 'long', timeZone: 'UTC' }),
        dateTime: new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC' }),
        time: new Intl.DateTimeFormat(lang, { timeStyle: 'short', timeZone: 'UTC' }),
        and: new Intl.ListFormat(lang, { style: 'long', type: 'conjunction' }),
      };
      formats.set(lang, f);
    }
    return f;
  };

  return {
    /** The language for this request, from Accept-Language among the catalog's languages. */
    languageOf(req: Request): string {
      return req.acceptsLanguages(...messages.languages) || 'en';
    },
    render(res: Response, template: string, context: Record<string, unknown> = {}, status = 200): void {
      const lang = (res.locals.lang as string | undefined) ?? 'en';
      const t: Translate = translator(messages, lang);
      const f = formatsFor(lang);
      const html = env.render(template, {
        lang,
        t,
        list: (key: string) => messages.lookup(lang, key) ?? [],
        date: (d: Date | string) => f.date.format(new Date(d)),
        dateTime: (d: Date | string) => `${f.dateTime.format(new Date(d))} UTC`,
        time: (d: Date | string) => `${f.time.format(new Date(d))} UTC`,
        // Labels within a sentence: each message (through `wrap`, a message with {text}, if given), joined by "and".
        labels: (keys: readonly string[], wrap?: string) =>
          f.and.format(keys.map((k) => (wrap ? t(wrap, { text: t(k) }) : t(k)))),
        markdown: (text: string) => marked.parse(text, { async: false }),
        brand,
        session: res.locals.session ?? null,
        csrf: res.locals.session?.csrf ?? '',
        gpc: res.locals.gpc ?? null,
        ...context,
      });
      res.status(status).type('html').send(html);
    },
  };
}

export type Views = ReturnType<typeof createViews>;
