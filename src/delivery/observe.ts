/**
 * The worker's observer for monitoring: every settled attempt becomes Prometheus metrics (in this
 * process's registry) and delivery statistics (counted in memory, flushed to Redis by the recorder).
 * Both are a few in-memory increments: nothing here waits on Redis.
 */
import type { DeliveryMetrics } from '../shared/metrics.js';
import type { StatsRecorder } from '../shared/stats.js';
import type { AttemptEvent, WorkerObserver } from './worker.js';

export function monitoringObserver(metrics: DeliveryMetrics | undefined, stats: StatsRecorder | undefined): WorkerObserver {
  return {
    onAttempt(e: AttemptEvent): void {
      const endedAt = e.at + e.durationMs;
      const host = e.endpointHost || '(unknown)';
      if (metrics) {
        metrics.deliveries.inc({ outcome: e.action, host: metrics.hostLabel(host) });
        if (e.action === 'dead_lettered') metrics.deadLettered.inc({ reason: e.reason ?? 'unknown' });
        metrics.duration.observe({ outcome: e.action }, e.durationMs / 1000);
        if (e.action === 'delivered') metrics.latency.observe((e.queuedMs + e.durationMs) / 1000);
      }
      stats?.attempt({
        action: e.action,
        host,
        at: endedAt,
        latencyMs: e.queuedMs + e.durationMs,
        status: e.status,
        ...(e.errCode ? { error: e.errCode } : {}),
        ...(e.reason ? { reason: e.reason } : {}),
      });
    },
    onClaimed(count: number): void {
      metrics?.claimed.inc(count);
    },
  };
}
