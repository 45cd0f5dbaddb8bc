import type { Metrics } from '../metrics/index.js';
import type { EntityOrder, OrderKey } from '../ordering/index.js';
import type { OutcomeState } from '../results/index.js';
import { decodeRetry, encodeRetry, type RetryRecord, type RetryScheduler } from '../retries/index.js';
import type { UntilDone } from '../shared/index.js';
import { inputFromRecord, type RunInput } from './run-input.js';

export interface EntityLinesDeps {
  /** The lines in Redis (src/ordering). */
  order: EntityOrder;
  /** Deliveries of one entity waiting in this process for the one before them (ENDPOINT_MAX_QUEUE). */
  maxEntityQueue: number;
  scheduler: RetryScheduler;
  metrics: Metrics;
  untilDone: UntilDone;
}

/** Where a new event's delivery stands in its entity's line. */
export type Place = 'free' | 'held' | 'full' | 'stale';

/** What writing an ordered delivery's retry record came to. */
export type Scheduled = 'scheduled' | 'held' | 'too_large' | 'order_line_full';

/**
 * Deliveries of one line a retry record goes on with in process before it hands over to a retry
 * record of the next one: it stays unfinished on its topic meanwhile, and must not stall it.
 */
const LINE_STEPS = 100;

/**
 * The runner's side of the per-entity lines of webhooks with ordering "entity". A delivery takes
 * its place in its entity's line (src/ordering): it goes at once when the line is empty, and
 * otherwise waits, stored in Redis, until the ones before it have ended. The first in line is
 * driven by a retry record; when its delivery ends, that record goes on with the next ones.
 * Within this process, deliveries of one entity also run one after the other (`inLine`), since
 * they come from one partition in order.
 */
export class EntityLines {
  /** Per (webhook, entity): the last delivery started here, and how many wait for their turn. */
  private readonly chains = new Map<string, { tail: Promise<void>; length: number }>();

  constructor(private readonly deps: EntityLinesDeps) {}

  /** Backpressure: the end of this entity's chain here when it is full, else nothing. */
  waitForRoom(key: OrderKey): Promise<void> | undefined {
    const chain = this.chains.get(chainKey(key));
    return chain && chain.length >= this.deps.maxEntityQueue ? chain.tail : undefined;
  }

  /** Runs `work` after the previous delivery of this (webhook, entity) started here has finished. */
  inLine(key: OrderKey, work: () => Promise<void>): Promise<void> {
    const k = chainKey(key);
    const chain = this.chains.get(k) ?? { tail: Promise.resolve(), length: 0 };
    const result = chain.tail.then(work);
    chain.tail = result.then(
      () => {},
      () => {},
    );
    chain.length++;
    this.chains.set(k, chain);
    void chain.tail.then(() => {
      if (--chain.length === 0) this.chains.delete(k);
    });
    return result;
  }

  /**
   * A new event's delivery joins its line (`record`: what is sent when its turn comes): free to go
   * now, held behind others, refused by a full line, or already there ('stale': read again after a
   * crash or a rebalance).
   */
  async join(key: OrderKey, record: RetryRecord): Promise<Place> {
    const { untilDone, metrics } = this.deps;
    const line = await untilDone(
      () => this.deps.order.admit(key, record.deliveryId, stored(record)),
      'queueing an ordered delivery',
    );
    if (line.undriven !== null) await this.drive(key, line.undriven, 'repaired');
    switch (line.status) {
      case 'free':
      case 'full':
        return line.status;
      case 'held':
        metrics.ordered.inc({ step: 'held' });
        return 'held';
      default:
        metrics.ordered.inc({ step: 'stale' });
        return 'stale';
    }
  }

  /**
   * A retry record's turn: attempted (by `runOnce`) only while first in its entity's line. When
   * its delivery ends, it goes on with the next ones in process (no Kafka round trip per step)
   * until one fails and takes over with a retry record of its own, or LINE_STEPS are done.
   */
  async runTurn(driver: RunInput, key: OrderKey, runOnce: (input: RunInput) => Promise<OutcomeState>): Promise<void> {
    const { untilDone, metrics } = this.deps;
    const driverId = driver.delivery.deliveryId;
    const { turn, undriven } = await untilDone(() => this.deps.order.turn(key, driverId), 'checking a delivery turn');
    if (undriven !== null) await this.drive(key, undriven, 'repaired');
    if (turn.role === 'stale') {
      metrics.ordered.inc({ step: 'stale' });
      return;
    }
    let input = turn.role === 'head' ? driver : nextInLine(turn.record, driver);
    for (let step = 1; ; step++) {
      const state = await runOnce(input);
      if (state === 'RETRY_SCHEDULED') return; // it holds the line, driven by its own retry record
      const deliveryId = input.delivery.deliveryId;
      const next = await untilDone(() => this.deps.order.release(key, deliveryId, driverId), 'releasing an entity');
      if (next === null) return;
      metrics.ordered.inc({ step: 'released' });
      if (step >= LINE_STEPS) return this.drive(key, next, 'released');
      input = nextInLine(next, driver);
    }
  }

  /**
   * Writes an ordered delivery's retry record (by `write`) once it has taken the first place in
   * its entity's line; 'held' when an earlier one is there: then it has no retry record of its own.
   */
  async schedule(
    key: OrderKey,
    record: RetryRecord,
    write: () => Promise<'scheduled' | 'too_large'>,
  ): Promise<Scheduled> {
    const { untilDone } = this.deps;
    const line = await untilDone(
      () => this.deps.order.hold(key, record.deliveryId, stored(record)),
      'holding an entity',
    );
    if (line.status === 'full') return 'order_line_full';
    if (line.status !== 'head') {
      if (line.undriven !== null) await this.drive(key, line.undriven, 'repaired');
      return 'held';
    }
    const written = await write();
    if (written === 'scheduled')
      await untilDone(() => this.deps.order.markDriven(key, record.deliveryId), 'marking a driver written');
    // It ends here (FAILED too_large). The next one is left undriven until its retry record is
    // written just after: should this process die in between, the next look at the line repairs it.
    else await this.release(key, record.deliveryId, null);
    return written;
  }

  /** A retry record's delivery ended without an attempt: its turn ends, and the line moves on. */
  async endTurn(key: OrderKey, deliveryId: string): Promise<void> {
    const { turn, undriven } = await this.deps.untilDone(
      () => this.deps.order.turn(key, deliveryId),
      'checking a delivery turn',
    );
    if (undriven !== null) await this.drive(key, undriven, 'repaired');
    if (turn.role === 'head') await this.release(key, deliveryId, deliveryId);
    else if (turn.role === 'drives') await this.drive(key, turn.record, 'released');
  }

  /**
   * Ends a delivery's turn; the next in its entity's line, if any, gets a retry record due now.
   * `driverId`: the retry record this runs for, read again after a crash to finish the step.
   */
  private async release(key: OrderKey, deliveryId: string, driverId: string | null): Promise<void> {
    const next = await this.deps.untilDone(
      () => this.deps.order.release(key, deliveryId, driverId),
      'releasing an entity',
    );
    if (next === null) return;
    this.deps.metrics.ordered.inc({ step: 'released' });
    await this.drive(key, next, 'released');
  }

  /** Writes the retry record of a line's first, from what the line stored, and notes it written. */
  private async drive(key: OrderKey, stored: string, why: 'released' | 'repaired'): Promise<void> {
    const record = decodeRetry(Buffer.from(stored, 'utf8'));
    const dueAt = Math.max(record.dueAt, Date.now());
    await this.deps.scheduler.schedule({ ...record, dueAt }, dueAt - Date.now());
    await this.deps.untilDone(() => this.deps.order.markDriven(key, record.deliveryId), 'marking a driver written');
    if (why === 'repaired') this.deps.metrics.ordered.inc({ step: why });
  }
}

/** A retry record as a line stores it. */
function stored(record: RetryRecord): string {
  return encodeRetry(record).toString('utf8');
}

/** The next delivery of a line, from what the line stored, to the same (current) subscription. */
function nextInLine(stored: string, driver: RunInput): RunInput {
  return inputFromRecord(decodeRetry(Buffer.from(stored, 'utf8')), driver.delivery.target);
}

function chainKey(key: OrderKey): string {
  return `${key.webhookId}\n${key.entity}`;
}
