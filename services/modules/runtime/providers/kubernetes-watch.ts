/**
 * Watches one Deployment through the Kubernetes watch API so that the kubernetes provider learns
 * readiness changes (status.readyReplicas: pods becoming ready, failing or deleted) and the
 * Deployment's deletion as they happen, instead of polling.
 *
 * Protocol (plain HTTPS, no client library): GET the Deployment for its state and
 * resourceVersion, then a streaming `GET …/deployments?watch=1&fieldSelector=metadata.name=<name>
 * &resourceVersion=<rv>&allowWatchBookmarks=true&timeoutSeconds=<n>` (authorised as `watch` on
 * that one Deployment, so RBAC can stay get+watch with resourceNames). Each line is a JSON event
 * (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR). When the server ends the stream (timeoutSeconds)
 * the watch resumes from the last resourceVersion; when that version has expired (HTTP 410 or an
 * ERROR event with code 410 "Gone") it re-reads the Deployment and starts over. Any other failure
 * reconnects with exponential backoff (bounded), and while the watch is broken callers fall back
 * to polling (phase `broken`). The watch runs only while someone holds a reference (acquire).
 */
import { backoffDelay } from '../../../shared/backoff.js';
import type { Logger } from '../../../shared/logger.js';

export interface DeploymentWatchOptions {
  apiServer: string;
  namespace: string;
  deployment: string;
  token?: string;
  logger: Logger;
  fetch?: typeof fetch;
  /** Deadline of the GET and of the watch's response headers [5000]. */
  requestTimeoutMs?: number;
  /** How long the server keeps one watch open before ending it [300]. */
  watchTimeoutSeconds?: number;
  /** Reconnect backoff after a failure: doubles per failure in a row, capped [250, 10000]. */
  reconnectInitialMs?: number;
  reconnectMaxMs?: number;
}

/** What the watch knows of the Deployment. */
export interface ObservedDeployment {
  exists: boolean;
  /** spec.replicas */
  replicas: number;
  /** status.readyReplicas */
  readyReplicas: number;
  resourceVersion: string;
}

/** idle: nobody holds it; starting: first read; watching: stream open; broken: reconnecting. */
export type WatchPhase = 'idle' | 'starting' | 'watching' | 'broken';

interface DeploymentObject {
  metadata?: { resourceVersion?: string };
  spec?: { replicas?: number };
  status?: { readyReplicas?: number };
}

interface WatchEvent {
  type?: string;
  object?: DeploymentObject & { code?: number; message?: string; reason?: string };
}

class Expired extends Error {}

export class DeploymentWatch {
  phase: WatchPhase = 'idle';
  state: ObservedDeployment | null = null;
  /** Requests made, for status and tests: reads (initial and relists), watch streams opened. */
  readonly counts = { reads: 0, watches: 0, relists: 0, failures: 0 };
  lastError: string | null = null;
  private refs = 0;
  private abort: AbortController | null = null;
  private loop: Promise<void> | null = null;
  private waiters = new Set<() => void>();
  private deletedListeners = new Set<() => void>();

  constructor(private readonly o: DeploymentWatchOptions) {}

  private get what(): string {
    return `deployment ${this.o.namespace}/${this.o.deployment}`;
  }

  /** Starts the watch if needed; the returned function releases this reference (idempotent). */
  acquire(): () => void {
    this.refs++;
    if (!this.loop) {
      const abort = new AbortController();
      this.abort = abort;
      this.phase = 'starting';
      this.loop = this.run(abort.signal).finally(() => {
        if (this.abort === abort) {
          this.loop = null;
          this.abort = null;
          this.phase = 'idle';
          this.state = null;
        }
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.refs === 0) this.close();
    };
  }

  /** Stops the watch now (every reference is dropped). */
  close(): void {
    this.refs = 0;
    this.abort?.abort();
    this.abort = null;
    this.loop = null;
    this.phase = 'idle';
    this.state = null;
    this.notify();
  }

  /** Resolves at the next change of state or phase, or after timeoutMs. */
  changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, Math.max(0, timeoutMs));
      this.waiters.add(done);
    });
  }

  /** Called when the Deployment is deleted; returns an unsubscribe function. */
  onDeleted(listener: () => void): () => void {
    this.deletedListeners.add(listener);
    return () => this.deletedListeners.delete(listener);
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }

  private headers(): Record<string, string> {
    return {
      accept: 'application/json',
      ...(this.o.token ? { authorization: `Bearer ${this.o.token}` } : {}),
    };
  }

  private base(): string {
    return `${this.o.apiServer.replace(/\/$/, '')}/apis/apps/v1/namespaces/${encodeURIComponent(this.o.namespace)}/deployments`;
  }

  private observe(obj: DeploymentObject | undefined, exists: boolean): void {
    const before = this.state;
    this.state = {
      exists,
      replicas: exists ? (obj?.spec?.replicas ?? 0) : 0,
      readyReplicas: exists ? (obj?.status?.readyReplicas ?? 0) : 0,
      resourceVersion: obj?.metadata?.resourceVersion ?? before?.resourceVersion ?? '',
    };
    if (before?.exists && !exists) {
      this.o.logger.warn(`${this.what} was deleted`);
      for (const l of [...this.deletedListeners]) l();
    }
    this.notify();
  }

  private setPhase(p: WatchPhase): void {
    if (this.phase === p) return;
    this.phase = p;
    this.notify();
  }

  /** GET the Deployment: its state and the resourceVersion to watch from ('' when absent). */
  private async read(signal: AbortSignal): Promise<string> {
    this.counts.reads++;
    const res = await (this.o.fetch ?? fetch)(`${this.base()}/${encodeURIComponent(this.o.deployment)}`, {
      headers: this.headers(),
      signal: AbortSignal.any([signal, AbortSignal.timeout(this.o.requestTimeoutMs ?? 5000)]),
    });
    const text = await res.text();
    if (res.status === 404) {
      this.observe(undefined, false);
      return '';
    }
    if (!res.ok) throw new Error(`GET ${this.what}: HTTP ${res.status}: ${text.slice(0, 200)}`);
    const obj = JSON.parse(text) as DeploymentObject;
    this.observe(obj, true);
    return obj.metadata?.resourceVersion ?? '';
  }

  /** One watch stream; returns the resourceVersion to resume from. Throws Expired on 410. */
  private async watchOnce(rv: string, signal: AbortSignal): Promise<string> {
    const q = new URLSearchParams({
      watch: '1',
      fieldSelector: `metadata.name=${this.o.deployment}`,
      allowWatchBookmarks: 'true',
      timeoutSeconds: String(this.o.watchTimeoutSeconds ?? 300),
    });
    if (rv) q.set('resourceVersion', rv);
    // Headers within requestTimeoutMs; after that only our own abort (the server ends the stream).
    const headers = new AbortController();
    const t = setTimeout(() => headers.abort(new Error('no answer')), this.o.requestTimeoutMs ?? 5000);
    this.counts.watches++;
    let res: Response;
    try {
      res = await (this.o.fetch ?? fetch)(`${this.base()}?${q.toString()}`, {
        headers: this.headers(),
        signal: AbortSignal.any([signal, headers.signal]),
      });
    } finally {
      clearTimeout(t);
    }
    if (res.status === 410) {
      await res.text().catch(() => '');
      throw new Expired(`resourceVersion ${rv} expired (HTTP 410)`);
    }
    if (!res.ok || !res.body)
      throw new Error(`watch ${this.what}: HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
    this.setPhase('watching');
    this.lastError = null;
    const decoder = new TextDecoder();
    let buffered = '';
    let last = rv;
    const reader = res.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buffered += decoder.decode(value, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) last = this.event(JSON.parse(line) as WatchEvent, last);
        }
      }
    } finally {
      reader.releaseLock();
    }
    if (buffered.trim()) last = this.event(JSON.parse(buffered) as WatchEvent, last);
    return last;
  }

  /** Applies one watch event; returns the resourceVersion reached. */
  private event(e: WatchEvent, rv: string): string {
    const obj = e.object;
    const next = obj?.metadata?.resourceVersion ?? rv;
    switch (e.type) {
      case 'ADDED':
      case 'MODIFIED':
        this.observe(obj, true);
        return next;
      case 'DELETED':
        this.observe(obj, false);
        return next;
      case 'BOOKMARK':
        return next;
      case 'ERROR':
        if (obj?.code === 410) throw new Expired(`resourceVersion ${rv} expired: ${obj.message ?? 'Gone'}`);
        throw new Error(`watch ${this.what}: ${obj?.message ?? JSON.stringify(obj)}`);
      default:
        throw new Error(`watch ${this.what}: unexpected event type ${String(e.type)}`);
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    const log = this.o.logger;
    let rv: string | null = null;
    let failures = 0;
    while (!signal.aborted) {
      try {
        if (rv === null) rv = await this.read(signal);
        const openedAt = Date.now();
        rv = await this.watchOnce(rv, signal);
        if (signal.aborted) break;
        log.debug(`watch of ${this.what} ended by the server; resuming from ${rv || 'now'}`);
        // The server ended the stream (timeoutSeconds): resume from rv. One that ends at once,
        // again and again, must not become a busy loop: back off as after a failure.
        if (Date.now() - openedAt >= 1000) failures = 0;
        else await sleep(this.backoff(++failures), signal);
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof Expired) {
          // The history we would resume from is gone: re-read the Deployment and start over.
          this.counts.relists++;
          log.info(`watch of ${this.what}: ${e.message}; re-reading it`);
          rv = null;
          continue;
        }
        failures++;
        this.counts.failures++;
        const message = (e as Error).message;
        if (failures === 1 || message !== this.lastError)
          log.warn(`watch of ${this.what} failed: ${message}; polling until it reconnects`);
        this.lastError = message;
        this.setPhase('broken');
        await sleep(this.backoff(failures), signal);
      }
    }
  }

  /** Reconnect delay after `failures` in a row: doubling, capped, ±20 % jitter. */
  private backoff(failures: number): number {
    return backoffDelay(failures, {
      initialMs: this.o.reconnectInitialMs ?? 250,
      maxMs: this.o.reconnectMaxMs ?? 10_000,
      jitter: 0.2,
    });
  }
}

/** Resolves after ms, or at once when signal aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
