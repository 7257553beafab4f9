/**
 * The route part of CanHandle shared by every module type: does the asked route use one of the
 * module's protocols, and which of the module's own routes match it (best = highest priority,
 * then most specific)?
 */
import { routeMatches, specificity } from '../../nlb/domain/routes.js';
import type { ProtocolName, RouteSpec } from '../../nlb/domain/types.js';
import { RoutingService } from '../../nlb/nlb-routing.js';
import type { CanHandleAnswer } from '../runtime/plugin.js';

export function routeScore(
  route: RouteSpec,
  context: Record<string, string>,
  routes: RouteSpec[],
  protocols: readonly ProtocolName[],
  typeName: string,
): CanHandleAnswer {
  if (route.protocol && !protocols.includes(route.protocol)) {
    return {
      canHandle: false,
      priority: 0,
      reason: `${typeName} does not speak ${route.protocol} (it speaks ${protocols.join(', ')})`,
    };
  }
  if (routes.length === 0)
    return {
      canHandle: true,
      priority: 1,
      reason: `${typeName} has no routes of its own; accepts any ${protocols.join('/')} traffic`,
    };
  const facts = RoutingService.facts(route, context);
  const hits = routes
    .filter((r) => routeMatches(r, facts))
    .sort((a, b) => b.priority - a.priority || specificity(b) - specificity(a));
  if (hits.length === 0)
    return { canHandle: false, priority: 0, reason: `none of ${typeName}'s ${routes.length} route(s) match` };
  const best = hits[0];
  return {
    canHandle: true,
    priority: Math.max(1, Math.min(1_000_000, best.priority * 100 + Math.round(specificity(best) * 10))),
    reason: `matches route ${best.routeId}`,
    metadata: { route_id: best.routeId },
  };
}
