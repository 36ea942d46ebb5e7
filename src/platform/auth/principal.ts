export const SCOPES = ['decisions', 'consents:write', 'accounts:write', 'audit:read', 'webhooks:write'] as const;
export type Scope = (typeof SCOPES)[number];

/** Who is calling, from a verified token. */
export interface Principal {
  readonly clientId: string;
  readonly scopes: ReadonlySet<string>;
  /** The purposes this client may ask about: statutory exceptions stay with the pipelines entitled to them. */
  readonly purposes: ReadonlySet<string>;
  /**
   * The token carries `subscriber_channel: true`: a channel where the subscriber acts in person on a system the ISP
   * authenticated them to (a self-service kiosk, the ISP's app), so that it may record changes as the subscriber.
   */
  readonly subscriberChannel: boolean;
}
