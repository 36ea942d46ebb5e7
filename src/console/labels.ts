import type { Catalog } from '../platform/config/catalog';

/** A label: a message key when the catalog knows the id, else the id itself (a purpose since removed, say). */
export interface Label {
  readonly id: string;
  readonly key?: string;
  /** A statutory exception, not a purpose that needs the subscriber's choice. */
  readonly exception?: true;
}

export const purposeLabel = (catalog: Catalog, id: string): Label =>
  catalog.purposes.has(id)
    ? { id, key: `purposes.${id}.label` }
    : catalog.exceptions.has(id)
      ? { id, key: `exceptions.${id}.label`, exception: true }
      : { id };

export const categoryLabel = (catalog: Catalog, id: string): Label =>
  catalog.categories.has(id) ? { id, key: `categories.${id}.label` } : { id };

/** The purposes and exceptions of the catalog, as the console's forms offer them. */
export const purposeOptions = (catalog: Catalog): Label[] =>
  [...catalog.purposes.keys(), ...catalog.exceptions.keys()].map((id) => purposeLabel(catalog, id));
