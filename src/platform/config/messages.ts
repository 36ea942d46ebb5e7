import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Catalog } from './catalog';

/**
 * The portal's words, one JSON file per language in config/messages/. English must be complete
 * (every key the templates use, a label for every catalog entry); another language must have
 * exactly English's keys. Checked at start-up like the rest of the configuration.
 */

export type MessageTree = { readonly [key: string]: string | readonly string[] | MessageTree };
export type Translate = (key: string, params?: Record<string, string | number>) => string;

export interface Messages {
  readonly languages: readonly string[];
  lookup(lang: string, key: string): string | readonly string[] | undefined;
}

export function loadMessages(configDir: string, catalog: Catalog): { messages?: Messages; problems: string[] } {
  const dir = path.join(configDir, 'messages');
  const problems: string[] = [];
  const trees = new Map<string, Map<string, string | readonly string[]>>();
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  } catch (err) {
    return { problems: [`${dir}: ${(err as Error).message}`] };
  }
  for (const file of files) {
    try {
      trees.set(
        path.basename(file, '.json'),
        flatten(JSON.parse(readFileSync(path.join(dir, file), 'utf8')) as MessageTree),
      );
    } catch (err) {
      problems.push(`${path.join(dir, file)}: ${(err as Error).message}`);
    }
  }
  const en = trees.get('en');
  if (!en) return { problems: [...problems, `${dir}/en.json: English messages are required`] };
  const required = [
    ...[...catalog.purposes.keys()].flatMap((id) => [`purposes.${id}.label`, `purposes.${id}.description`]),
    ...[...catalog.exceptions.keys()].map((id) => `exceptions.${id}.label`),
    ...[...catalog.categories.keys()].map((id) => `categories.${id}.label`),
  ];
  for (const key of required)
    if (!en.has(key)) problems.push(`${dir}/en.json: ${key}: missing (the catalog has this entry)`);
  for (const [lang, tree] of trees) {
    if (lang === 'en') continue;
    for (const key of en.keys()) if (!tree.has(key)) problems.push(`${dir}/${lang}.json: ${key}: missing`);
    for (const key of tree.keys()) if (!en.has(key)) problems.push(`${dir}/${lang}.json: ${key}: not an English key`);
  }
  const languages = ['en', ...[...trees.keys()].filter((l) => l !== 'en').sort()];
  return { problems, messages: { languages, lookup: (lang, key) => (trees.get(lang) ?? en).get(key) } };
}

function flatten(tree: MessageTree, prefix = '', out = new Map<string, string | readonly string[]>()) {
  for (const [k, v] of Object.entries(tree)) {
    if (k.startsWith('$')) continue;
    const key = prefix + k;
    if (typeof v === 'string' || Array.isArray(v)) out.set(key, v as string | readonly string[]);
    else flatten(v as MessageTree, `${key}.`, out);
  }
  return out;
}

/** A translator for one language. An unknown key is a programming error: it throws, and tests catch it. */
export function translator(messages: Messages, lang: string): Translate {
  return (key, params = {}) => {
    const text = messages.lookup(lang, key);
    if (typeof text !== 'string') throw new Error(`no message "${key}"`);
    return text.replace(/\{(\w+)\}/g, (m, name: string) => (name in params ? String(params[name]) : m));
  };
}
