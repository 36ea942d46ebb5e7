/** The consent component's public interface: consent events, the state they derive, their expiry. */
export { consentJobs } from './consent.jobs';
export { consentRouter } from './consent.router';
export { consentRoutes } from './consent.schema';
export {
  type ChangeSet,
  type ConsentChange,
  type ConsentEventView,
  ConsentService,
  type ConsentView,
  type Provenance,
  type RecordedEvent,
} from './consent.service';
