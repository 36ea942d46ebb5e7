import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../src/platform/config';
import { loadCatalog } from '../../src/platform/config/catalog';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('configuration', () => {
  it('has working defaults for development', () => {
    const c = loadConfig({});
    expect(c.http.port).toBe(8080);
    expect(c.db.url).toMatch(/^postgres:\/\/[^@]+@localhost:5432\/optgate$/);
    expect(c.redis.url).toBe('redis://127.0.0.1:6379');
    expect(c.catalog.categories.size).toBe(15);
    expect(c.catalog.categories.get('other_customer_info')!.regime).toBe('opt_out');
    expect([...c.catalog.purposes.keys()]).toEqual([
      'ad_targeting',
      'data_sale',
      'third_party_disclosure',
      'permit_access',
      'product_analytics',
    ]);
    const court = c.catalog.exceptions.get('court_order')!;
    expect(court.referencePattern!.test('CV-2026-00123')).toBe(true);
    expect(court.referencePattern!.test('   ')).toBe(false);
    expect(court.referencePattern!.test('see attached')).toBe(false);
    expect(court.recipientKinds).toEqual(['court']);
    expect(c.catalog.exceptions.get('emergency_services')!.categories).toEqual(['precise_geolocation']);
    expect(c.catalog.exceptions.get('own_communications_marketing')!.categories).not.toEqual(
      expect.arrayContaining(['ssn']),
    );
    for (const sensitive of ['ssn', 'health', 'financial', 'children', 'communications_content']) {
      expect(c.catalog.exceptions.get('own_communications_marketing')!.categories).not.toContain(sensitive);
    }
    // One example recipient of each kind.
    expect(new Set([...c.catalog.recipients.values()].map((r) => r.kind))).toEqual(
      new Set(['advertiser', 'data_broker', 'processor', 'emergency_service', 'court']),
    );
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.db)).toBe(true);
  });

  it('names every bad value at once', () => {
    const problems = problemsOf({ PORT: 'eighty', DATABASE_URL: 'mysql://x/y', LOG_LEVEL: 'chatty' });
    expect(problems.join('\n')).toMatch(/PORT/);
    expect(problems.join('\n')).toMatch(/DATABASE_URL/);
    expect(problems.join('\n')).toMatch(/LOG_LEVEL/);
  });

  it('has no default secrets in production', () => {
    const problems = problemsOf({ NODE_ENV: 'production' });
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^JWKS_URL or JWKS_FILE/),
        expect.stringMatching(/^SIGNING_KEY_FILE/),
        expect.stringMatching(/^EVIDENCE_HMAC_KEY/),
        expect.stringMatching(/^TOKEN_ISSUER/),
      ]),
    );
  });

  it('refuses a catalog with mistakes, naming file and field', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-catalog-'));
    cpSync(path.join(__dirname, '../../config/notices'), path.join(dir, 'notices'), { recursive: true });
    const catalog = JSON.parse(readFileSync(path.join(__dirname, '../../config/catalog.json'), 'utf8'));
    catalog.categories[0].regime = 'maybe';
    catalog.exceptions[3].requireReference = true; // a typo must not pass silently
    catalog.notices[1].materialFor = ['billing'];
    catalog.notices[2].file = 'notices/missing.md';
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'catalog.json'), JSON.stringify(catalog));
    const problems = problemsOf({ CONFIG_DIR: dir }).join('\n');
    expect(problems).toMatch(/catalog\.json: categories\.0\.regime/);
    expect(problems).toMatch(/exceptions\.3.*requireReference/);
    const fixed = {
      ...catalog,
      categories: catalog.categories.map((c: object, i: number) => (i === 0 ? { ...c, regime: 'opt_in' } : c)),
    };
    fixed.exceptions[3] = { id: 'court_order', label: 'x', categories: ['name'], referencePattern: '[0-9]+' };
    writeFileSync(path.join(dir, 'catalog.json'), JSON.stringify(fixed));
    const second = problemsOf({ CONFIG_DIR: dir }).join('\n');
    expect(second).toMatch(/notices\.1\.materialFor: "billing" is not a purpose that needs consent/);
    fixed.notices[1].materialFor = [];
    writeFileSync(path.join(dir, 'catalog.json'), JSON.stringify(fixed));
    expect(problemsOf({ CONFIG_DIR: dir }).join('\n')).toMatch(/notices\.2\.file: .*missing\.md/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists what each purpose may ask for, and which categories are sensitive; refuses mistakes in either', () => {
    const { catalog } = loadConfig({});
    expect([...catalog.sensitive].sort()).toEqual(
      ['children', 'communications_content', 'financial', 'health', 'precise_geolocation', 'ssn'].sort(),
    );
    // Nothing asks targeted advertising for a Social Security number; every purpose may be refused the opt-out kind.
    expect(catalog.purposes.get('ad_targeting')!.categories).not.toContain('ssn');
    for (const p of catalog.purposes.values()) expect(p.categories).toContain('other_customer_info');

    const dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-catalog-'));
    cpSync(path.join(__dirname, '../../config/notices'), path.join(dir, 'notices'), { recursive: true });
    const file = JSON.parse(readFileSync(path.join(__dirname, '../../config/catalog.json'), 'utf8'));
    file.purposes[0].categories = ['name', 'shoe_size', 'name'];
    file.sensitiveCategories = ['ssn', 'blood_type'];
    writeFileSync(path.join(dir, 'catalog.json'), JSON.stringify(file));
    const problems = problemsOf({ CONFIG_DIR: dir }).join('\n');
    expect(problems).toMatch(/purposes\.0\.categories: lists a category twice/);
    expect(problems).toMatch(/purposes\.0\.categories: unknown category "shoe_size"/);
    expect(problems).toMatch(/purposes\.0\.categories: must list the opt-out category "other_customer_info"/);
    expect(problems).toMatch(/sensitiveCategories\.1: unknown category "blood_type"/);
    // Without lists: every purpose asks for every category, and the default sensitive ones are those the catalog has.
    for (const p of file.purposes) delete p.categories;
    delete file.sensitiveCategories;
    writeFileSync(path.join(dir, 'catalog.json'), JSON.stringify(file));
    const plain = loadCatalog(dir);
    expect(plain.purposes.get('ad_targeting')!.categories).toEqual([...plain.categories.keys()]);
    expect(plain.sensitive).toEqual(catalog.sensitive);
    rmSync(dir, { recursive: true, force: true });
  });

  it('ships the clickstream record schema, bound to the clickstream pipeline', () => {
    const { catalog } = loadConfig({});
    const clickstream = catalog.schemas.get('clickstream')!;
    expect(clickstream.accountField).toBe('accountId');
    expect(Object.fromEntries(clickstream.fields)).toEqual({
      url: 'web_browsing_history',
      app: 'app_usage_history',
      ip: 'ip_addresses',
      lat: 'precise_geolocation',
      lon: 'precise_geolocation',
      deviceId: 'device_identifiers',
      plan: 'other_customer_info',
    });
    expect([...clickstream.passThrough]).toEqual(['ts']);
    expect(clickstream.categories).toEqual([
      'web_browsing_history',
      'app_usage_history',
      'ip_addresses',
      'precise_geolocation',
      'device_identifiers',
      'other_customer_info',
    ]);
    expect(catalog.pipelineSchemas.get('clickstream-pipeline')).toBe('clickstream');
  });

  it('refuses record schemas with mistakes, naming file and field', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-schemas-'));
    cpSync(path.join(__dirname, '../../config'), dir, { recursive: true });
    const schema = (o: object) => ({
      id: 'clicks',
      accountField: 'accountId',
      fields: { url: 'web_browsing_history' },
      ...o,
    });
    const write = (file: object) => writeFileSync(path.join(dir, 'schemas.json'), JSON.stringify(file));
    write({
      schemas: [
        schema({ fields: { accountId: 'name', url: 'web_browsing_history' } }),
        schema({ passThrough: ['url'] }),
        schema({ fields: {} }),
        schema({ id: 'Bad id', mask: true }),
      ],
      pipelines: { p: 'nowhere' },
    });
    const problems = problemsOf({ CONFIG_DIR: dir }).join('\n');
    expect(problems).toMatch(/schemas\.json: schemas\.0\.accountField: the account field is neither mapped/);
    expect(problems).toMatch(/schemas\.json: schemas\.1\.passThrough\.0: "url" is also mapped/);
    expect(problems).toMatch(/schemas\.json: schemas\.1\.id: declared twice/);
    expect(problems).toMatch(/schemas\.json: schemas\.2\.fields: must map at least one field/);
    expect(problems).toMatch(/schemas\.json: schemas\.3\.id: must be a lower-case identifier/);
    expect(problems).toMatch(/schemas\.3.*mask/);
    expect(problems).toMatch(/schemas\.json: pipelines\.p: unknown schema/);
    write({ schemas: [schema({ fields: { url: 'browsing' } })] });
    expect(problemsOf({ CONFIG_DIR: dir }).join('\n')).toMatch(
      /schemas\.json: schemas\.0\.fields\.url: unknown category "browsing"/,
    );
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a brand a reader could not read or reach, naming file and field', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'optgate-brand-'));
    cpSync(path.join(__dirname, '../../config'), dir, { recursive: true });
    const brand = JSON.parse(readFileSync(path.join(dir, 'brand.json'), 'utf8'));
    expect(loadConfig({ CONFIG_DIR: dir }).brand).toMatchObject({
      name: brand.name,
      contact: { phoneHref: expect.stringMatching(/^tel:\+?\d+$/) },
      logo: { type: 'image/svg+xml' },
    });
    writeFileSync(
      path.join(dir, 'brand.json'),
      JSON.stringify({
        ...brand,
        logo: 'brand/missing.png',
        colours: { accent: '#9ab4f0', accentText: '#ffffff' },
        contact: { ...brand.contact, email: 'not an address' },
        signInUrl: 'javascript:alert(1)',
      }),
    );
    const problems = problemsOf({ CONFIG_DIR: dir }).join('\n');
    expect(problems).toMatch(/brand\.json: contact\.email/);
    expect(problems).toMatch(/brand\.json: signInUrl/);
    writeFileSync(
      path.join(dir, 'brand.json'),
      JSON.stringify({ ...brand, logo: 'brand/missing.png', colours: { accent: '#9ab4f0', accentText: '#ffffff' } }),
    );
    const second = problemsOf({ CONFIG_DIR: dir }).join('\n');
    expect(second).toMatch(/brand\.json: colours\.accent: contrast \d\.\d\d:1 against #ffffff is below 4\.5:1/);
    expect(second).toMatch(/brand\.json: colours\.accentText: contrast/);
    expect(second).toMatch(/brand\.json: logo: .*missing\.png/);
    rmSync(dir, { recursive: true, force: true });
  });

  it('computes each notice hash from its text', () => {
    const { createHash } = require('node:crypto') as typeof import('node:crypto');
    const c = loadConfig({});
    const v3 = c.catalog.noticesByVersion.get('v3')!;
    expect(v3.sha256).toBe(
      createHash('sha256')
        .update(readFileSync(path.join(__dirname, '../../config/notices/v3.md')))
        .digest('hex'),
    );
  });
});
