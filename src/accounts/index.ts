/** The accounts component's public interface: accounts, their status, imports. */
export { accountRouter } from './account.router';
export { accountRoutes } from './account.schema';
export { AccountService, MAX_ACCOUNTS_PER_CALL, type PlanChange } from './account.service';
