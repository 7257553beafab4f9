/**
 * Who may act on which module instance (DESIGN.md §7). Pure: the gRPC edge passes the caller
 * the auth interceptor authenticated; nothing here knows about tokens or transports.
 *
 * Rules:
 * - An admin may act on every instance.
 * - A module token may register an instance only inside its scope (instance id patterns and
 *   module types, services/shared/auth.ts `TokenScope`), and at most `maxRegistrations` live
 *   instances at once (the token's own limit, else the NLB's `limits.maxRegistrationsPerToken`).
 * - The token that registered an instance owns it: another module token may not heartbeat,
 *   report for, re-register, update the routes of, or unregister it.
 *
 * Ownership lives with the registration and is not durable: after an NLB restart the first
 * token to re-register an instance owns it again, and scopes keep other tokens out of ids
 * that are not theirs.
 */
import { instanceInScope, moduleTypeInScope, type Role, type TokenScope } from '../../shared/auth.js';
import { permissionDenied, resourceExhausted } from '../../shared/errors.js';

export interface Caller {
  principal: string;
  role: Role;
  scope?: TokenScope;
}

/** A caller that may do anything: the NLB itself, tests, auth off. */
export const SYSTEM_CALLER: Caller = Object.freeze({ principal: 'system', role: 'admin' });

/** A refused limit, for metrics and logs: which limit, and the message the caller got. */
export interface LimitHit {
  limit: string;
  message: string;
}

export class InstanceOwners {
  private readonly owners = new Map<string, string>();
  private readonly counts = new Map<string, number>();

  /** The principal that registered `instanceId`, if it is registered. */
  ownerOf(instanceId: string): string | undefined {
    return this.owners.get(instanceId);
  }

  /** How many live instances `principal` registered. */
  countOf(principal: string): number {
    return this.counts.get(principal) ?? 0;
  }

  /**
   * Throws permission_denied unless `caller` may register `instanceId` of `moduleType`, and
   * resource_exhausted (calling `onLimit` first) when the caller's registration limit is reached.
   */
  checkRegister(
    caller: Caller,
    instanceId: string,
    moduleType: string,
    maxPerToken: number,
    onLimit?: (hit: LimitHit) => void,
  ): void {
    if (caller.role === 'admin') return;
    const who = `token '${caller.principal}'`;
    if (!instanceInScope(caller.scope, instanceId)) {
      throw permissionDenied(
        `${who} may not register instance ${instanceId}: its scope allows ${caller.scope!.instances!.join(', ')}; use an id in scope or a token for this instance`,
      );
    }
    if (!moduleTypeInScope(caller.scope, moduleType)) {
      throw permissionDenied(
        `${who} may not register ${moduleType} instances: its scope allows ${caller.scope!.moduleTypes!.join(', ')}`,
      );
    }
    this.checkOwner(caller, instanceId, 're-register');
    if (this.owners.get(instanceId) === caller.principal) return; // a re-registration
    const max = caller.scope?.maxRegistrations || maxPerToken;
    if (max > 0 && this.countOf(caller.principal) >= max) {
      const message = `${who} already has ${max} registered instances, its limit; unregister one, or raise ${
        caller.scope?.maxRegistrations
          ? "the token's scope.maxRegistrations"
          : 'limits.maxRegistrationsPerToken'
      }`;
      onLimit?.({ limit: 'registrations_per_token', message });
      throw resourceExhausted(message);
    }
  }

  /**
   * Throws permission_denied unless `caller` may act on `instanceId` (heartbeat, report,
   * unregister, update its routes). Instances nobody registered are left to the caller's
   * scope: the registry answers for unknown ids.
   */
  checkAct(caller: Caller, instanceId: string, action: string): void {
    if (caller.role === 'admin') return;
    if (!instanceInScope(caller.scope, instanceId)) {
      throw permissionDenied(
        `token '${caller.principal}' may not ${action} instance ${instanceId}: it is outside the token's scope`,
      );
    }
    this.checkOwner(caller, instanceId, action);
  }

  /** Throws permission_denied unless `caller` may change module type `moduleType`'s deployment. */
  checkModuleType(caller: Caller, moduleType: string, action: string): void {
    if (caller.role === 'admin' || moduleTypeInScope(caller.scope, moduleType)) return;
    throw permissionDenied(
      `token '${caller.principal}' may not ${action} ${moduleType}: its scope allows ${caller.scope!.moduleTypes!.join(', ')}`,
    );
  }

  /** Records that `principal` registered `instanceId` (after the registry accepted it). */
  claim(instanceId: string, principal: string): void {
    const before = this.owners.get(instanceId);
    if (before === principal) return;
    if (before !== undefined) this.release(instanceId);
    this.owners.set(instanceId, principal);
    this.counts.set(principal, this.countOf(principal) + 1);
  }

  /** Forgets `instanceId` once the registry removed it. */
  release(instanceId: string): void {
    const owner = this.owners.get(instanceId);
    if (owner === undefined) return;
    this.owners.delete(instanceId);
    const n = this.countOf(owner) - 1;
    if (n > 0) this.counts.set(owner, n);
    else this.counts.delete(owner);
  }

  private checkOwner(caller: Caller, instanceId: string, action: string): void {
    const owner = this.owners.get(instanceId);
    if (owner !== undefined && owner !== caller.principal) {
      throw permissionDenied(
        `token '${caller.principal}' may not ${action} instance ${instanceId}: token '${owner}' registered it; only that token or an admin may`,
      );
    }
  }
}
