import { Text } from 'ink';
import { render } from 'ink-testing-library';
import { describe, expect, it } from 'vitest';
import { streamPort, type NlbSource } from '../../cli/ui/sources.js';
import { useNlbStream, type NlbStreamOptions, type NlbStreamState } from '../../cli/ui/useNlbStream.js';
import { backoffDelayMs } from '../../cli/ui/useReconnectingStream.js';
import { fakeNlbSource, series, snapshot } from './support/top-fakes.js';

/** Renders the hook's state as JSON, so a test can read it from the frame. */
function Probe({
  source,
  options,
  seen,
}: {
  source: NlbSource;
  options: NlbStreamOptions;
  seen: NlbStreamState[];
}) {
  const state = useNlbStream(source, options);
  seen.push(state);
  return <Text>{JSON.stringify({ phase: state.connection.phase, attempt: state.connection.attempt })}</Text>;
}

const FAST: NlbStreamOptions = {
  backoff: { initialMs: 20, maxMs: 40 },
  statusIntervalMs: 40,
  historySize: 3,
};

describe('useNlbStream', () => {
  it('keeps rows and a bounded history per row from the stream, and the status from polling', async () => {
    const nlb = fakeNlbSource();
    const seen: NlbStreamState[] = [];
    const app = render(<Probe source={nlb.source} options={FAST} seen={seen} />);
    await expect.poll(() => nlb.driver.streams.length).toBe(1);
    for (const rps of [1, 2, 3, 4]) {
      nlb.driver.push(
        snapshot({ 'ALB@1.0': series({ requests_per_second: rps }) }, `2026-01-02T03:04:0${rps}.000Z`),
      );
    }
    await expect.poll(() => seen.at(-1)?.history['ALB@1.0']?.rps).toEqual([2, 3, 4]);
    const last = seen.at(-1)!;
    expect(last.connection).toEqual({ phase: 'live', attempt: 0 });
    expect(last.rows.map((r) => [r.key, r.rps])).toEqual([['ALB@1.0', 4]]);
    expect(last.updatedAt).toBe('2026-01-02T03:04:04.000Z');
    await expect.poll(() => seen.at(-1)?.header?.status).toBe('HEALTHY');
    expect(seen.at(-1)?.deployments.map((d) => d.step)).toEqual(['2/4 (25 %)', undefined]);
    app.unmount();
  });

  it('cancels the stream and stops polling when unmounted', async () => {
    const nlb = fakeNlbSource();
    const app = render(<Probe source={nlb.source} options={FAST} seen={[]} />);
    await expect.poll(() => nlb.statusCalls()).toBeGreaterThan(1);
    app.unmount();
    expect(nlb.driver.current.cancelled).toBe(true);
    const calls = nlb.statusCalls();
    await new Promise((r) => setTimeout(r, 150));
    expect(nlb.statusCalls()).toBe(calls);
    // A late message or close from the cancelled stream changes nothing and opens nothing.
    nlb.driver.fail();
    await new Promise((r) => setTimeout(r, 80));
    expect(nlb.driver.streams).toHaveLength(1);
  });

  it('counts failed attempts and resets the count on the first message', async () => {
    const nlb = fakeNlbSource();
    const seen: NlbStreamState[] = [];
    const app = render(<Probe source={nlb.source} options={FAST} seen={seen} />);
    await expect.poll(() => nlb.driver.streams.length).toBe(1);
    nlb.driver.fail('boom');
    await expect.poll(() => app.lastFrame()).toBe('{"phase":"reconnecting","attempt":1}');
    expect(seen.at(-1)?.connection.error).toBe('boom');
    await expect.poll(() => nlb.driver.streams.length).toBe(2);
    nlb.driver.current.handlers.onClose(); // the server ended it
    await expect.poll(() => app.lastFrame()).toBe('{"phase":"reconnecting","attempt":2}');
    expect(seen.at(-1)?.connection.error).toBe('the server ended the stream');
    await expect.poll(() => nlb.driver.streams.length).toBe(3);
    nlb.driver.push(snapshot({}));
    await expect.poll(() => app.lastFrame()).toBe('{"phase":"live","attempt":0}');
    app.unmount();
  });

  it('backs off exponentially up to the cap', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelayMs(n))).toEqual([500, 1000, 2000, 4000, 5000, 5000]);
  });
});

describe('streamPort', () => {
  const closes = async (settle: (signal: AbortSignal) => Promise<unknown>, cancel = false) => {
    const seen: Array<Error | undefined> = [];
    const stop = streamPort<number>((signal) => settle(signal))({
      onMessage: () => undefined,
      onClose: (e) => seen.push(e),
    });
    if (cancel) stop();
    await new Promise((r) => setTimeout(r, 10));
    return seen;
  };

  it('reports a failure, the server ending the stream (also by cancelling it), and nothing after cancel', async () => {
    expect(await closes(() => Promise.reject(new Error('unreachable')))).toEqual([new Error('unreachable')]);
    expect(await closes(() => Promise.resolve())).toEqual([undefined]);
    expect(
      await closes(() => Promise.reject(Object.assign(new Error('CANCELLED'), { code: 'CANCELLED' }))),
    ).toEqual([undefined]);
    expect(
      await closes(
        (signal) => new Promise((resolve) => signal.addEventListener('abort', () => resolve('aborted'))),
        true,
      ),
    ).toEqual([]);
  });
});
