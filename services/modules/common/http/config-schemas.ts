/** Config pieces shared by the HTTP module types (ALB, AILB): active health checks and passive ejection. */
import { z } from 'zod';
import type { EjectionPolicy } from './backend-pool.js';
import type { HealthCheckSettings } from './health-checker.js';

/** Active checks; the field names follow the contract's HealthCheckConfig. */
export const healthCheckSchema = z
  .object({
    enabled: z.boolean().default(false),
    intervalSeconds: z.number().min(0.05).max(3600).default(5),
    timeoutSeconds: z.number().min(0.01).max(600).default(2),
    unhealthyThreshold: z.number().int().min(1).max(100).default(3),
    healthyThreshold: z.number().int().min(1).max(100).default(2),
    protocol: z.enum(['HTTP', 'TCP']).default('HTTP'),
    path: z.string().startsWith('/').max(2048).default('/'),
    /** 0 = the backend's own port. */
    port: z.number().int().min(0).max(65535).default(0),
    /** Host header of HTTP checks ('' = the backend's host). */
    host: z.string().max(255).default(''),
  })
  .strict();

export const passiveEjectionSchema = z
  .object({
    /** Consecutive gateway failures (connect errors, timeouts, 502/503/504) that eject; 0 = off. */
    consecutiveFailures: z.number().int().min(0).max(1000).default(5),
    baseEjectionSeconds: z.number().min(0.01).max(3600).default(30),
    maxEjectionSeconds: z.number().min(0.01).max(86_400).default(300),
    maxEjectedPercent: z.number().int().min(0).max(100).default(50),
  })
  .strict();

export type HealthCheckConfig = z.output<typeof healthCheckSchema>;
export type PassiveEjectionConfig = z.output<typeof passiveEjectionSchema>;

/** Health-check settings for the checker, from their config form (seconds → ms). */
export function healthCheckSettings(hc: HealthCheckConfig): HealthCheckSettings {
  return {
    enabled: hc.enabled,
    intervalMs: hc.intervalSeconds * 1000,
    timeoutMs: hc.timeoutSeconds * 1000,
    unhealthyThreshold: hc.unhealthyThreshold,
    healthyThreshold: hc.healthyThreshold,
    protocol: hc.protocol,
    path: hc.path,
    port: hc.port,
    host: hc.host,
  };
}

/** The ejection policy of a pool, from its config form (seconds → ms). */
export function ejectionPolicy(ej: PassiveEjectionConfig): EjectionPolicy {
  return {
    consecutiveFailures: ej.consecutiveFailures,
    baseEjectionMs: ej.baseEjectionSeconds * 1000,
    maxEjectionMs: ej.maxEjectionSeconds * 1000,
    maxEjectedPercent: ej.maxEjectedPercent,
  };
}
