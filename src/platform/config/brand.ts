import { statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { readConfigFile } from './config-file';

/**
 * The ISP's brand and contacts (config/brand.json): its names, logo, colours, and where a subscriber
 * turns for help. Validated at start-up like the catalog: a colour pair a reader could not read
 * (WCAG 2 contrast below 4.5:1) stops the start, naming the field.
 */

const hex = z.string().regex(/^#[0-9a-fA-F]{6}$/, 'must be a colour as #rrggbb');
const https = z.url({ protocol: /^https?$/ });

const brandFileSchema = z.strictObject({
  name: z.string().min(1).max(80).describe('What subscribers call the ISP'),
  legalName: z.string().min(1).max(200),
  logo: z
    .string()
    .regex(/\.(svg|png)$/, 'must be an .svg or .png file')
    .optional(),
  colours: z.strictObject({ accent: hex, accentText: hex }),
  contact: z.strictObject({
    phone: z.string().regex(/^\+?[0-9 ()-]{6,24}$/, 'must be a phone number'),
    email: z.email(),
    address: z.array(z.string().min(1).max(120)).min(1).max(6),
  }),
  /** Where a subscriber gets a new sign-in link (the ISP's account page). */
  signInUrl: https,
  policyUrl: https.optional(),
  /** The law the ISP answers to, as an ISO 3166-2 code (a country, or a country and a subdivision). */
  jurisdiction: z
    .string()
    .regex(/^[A-Z]{2}(-[A-Z0-9]{1,3})?$/, 'must be an ISO 3166-2 code, such as US-ME')
    .default('US-ME'),
});

export interface Brand {
  readonly name: string;
  readonly legalName: string;
  /** The logo file and its type, when there is one. */
  readonly logo?: { readonly file: string; readonly type: 'image/svg+xml' | 'image/png' };
  readonly colours: { readonly accent: string; readonly accentText: string };
  readonly contact: {
    readonly phone: string;
    /** For a tel: link. */
    readonly phoneHref: string;
    readonly email: string;
    readonly address: readonly string[];
  };
  readonly signInUrl: string;
  readonly policyUrl?: string;
  /** ISO 3166-2 code of the law the ISP answers to (default US-ME), named on every consent receipt. */
  readonly jurisdiction: string;
}

const PAPER = '#ffffff';
const MIN_CONTRAST = 4.5;

/** Reads and checks config/brand.json; returns its problems, each naming file and field. */
export function loadBrand(configDir: string): { brand?: Brand; problems: string[] } {
  const file = path.join(configDir, 'brand.json');
  const read = readConfigFile(file, brandFileSchema);
  if (!read.data) return { problems: read.problems };
  const b = read.data;
  const problems: string[] = [];
  const { accent, accentText } = b.colours;
  // The accent is the colour of links and outlined buttons on the page, and the background of filled buttons.
  for (const [field, fg, bg] of [
    ['colours.accent', accent, PAPER],
    ['colours.accentText', accentText, accent],
  ] as const) {
    const ratio = contrast(fg, bg);
    if (ratio < MIN_CONTRAST) {
      problems.push(
        `${file}: ${field}: contrast ${ratio.toFixed(2)}:1 against ${bg} is below ${MIN_CONTRAST}:1 (WCAG 2 AA)`,
      );
    }
  }
  let logo: Brand['logo'];
  if (b.logo) {
    const logoFile = path.resolve(configDir, b.logo);
    try {
      if (statSync(logoFile).size > 200 * 1024) problems.push(`${file}: logo: larger than 200 KiB`);
      logo = { file: logoFile, type: b.logo.endsWith('.svg') ? 'image/svg+xml' : 'image/png' };
    } catch (err) {
      problems.push(`${file}: logo: ${(err as Error).message}`);
    }
  }
  if (problems.length) return { problems };
  return {
    problems,
    brand: {
      name: b.name,
      legalName: b.legalName,
      ...(logo ? { logo } : {}),
      colours: b.colours,
      contact: { ...b.contact, phoneHref: `tel:${b.contact.phone.replace(/[^+0-9]/g, '')}` },
      signInUrl: b.signInUrl,
      ...(b.policyUrl ? { policyUrl: b.policyUrl } : {}),
      jurisdiction: b.jurisdiction,
    },
  };
}

/** WCAG 2 contrast ratio of two #rrggbb colours. */
export function contrast(a: string, b: string): number {
  const [la, lb] = [luminance(a), luminance(b)];
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

function luminance(colour: string): number {
  const channel = (i: number) => {
    const c = Number.parseInt(colour.slice(1 + i * 2, 3 + i * 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * channel(0) + 0.7152 * channel(1) + 0.0722 * channel(2);
}
