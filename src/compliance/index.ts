/** The compliance component's public interface: reports for staff that answer regulators (non-discrimination). */
export { complianceRouter } from './compliance.router';
export { complianceRoutes } from './compliance.schema';
export { ComplianceService } from './compliance.service';
