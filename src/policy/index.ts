/** The policy component's public interface: the decision engine, the decision service, its routes. */
export {
  type AccountState,
  loadAccountStates,
  sizeOfAccountState,
  UNKNOWN_ACCOUNT,
} from './decision.repository';
export { decisionRouter } from './decision.router';
export { decisionRoutes } from './decision.schema';
export { type BatchRequest, type Caller, type DecisionRequest, DecisionService } from './decision.service';
export { type CategoryResult, type ConsentSnapshot, evaluate, type Subject, type Verdict } from './engine';
