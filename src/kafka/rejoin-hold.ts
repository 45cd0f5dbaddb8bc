import { kafkajsPrototype } from './kafkajs-internals.js';

/**
 * Work to finish before a member rejoins its group: it gets a heartbeat that keeps the member's
 * session alive meanwhile (it never throws).
 */
export type RejoinHold = (heartbeat: () => Promise<void>) => Promise<void>;

interface ConsumerGroupInternals {
  memberId: string | null;
  heartbeat(options: { interval: number }): Promise<void>;
  joinAndSync(): Promise<void>;
}

const holds = new Map<string, RejoinHold>();
let installed = false;

/**
 * Has kafkajs wait for `hold` before `memberId` next rejoins its group.
 *
 * Why this reaches into kafkajs. A member hears that a rebalance has begun in a heartbeat's
 * answer. When that heartbeat is one of the service's, inside a batch, the batch holds the
 * rebalance back until the work under way is finished and committed (finishBeforeRebalance). But
 * kafkajs also heartbeats by itself between batches (after an empty fetch: an idle partition, a
 * quiet topic), and then it rejoins at once: it emits REBALANCING and sends JoinGroup in the same
 * turn, without waiting for its listeners. Deliveries still under way were then delivered again by
 * the partitions' next owner, and a commit started by the listener raced the JoinGroup and lost
 * whenever this member was the last to join ("Specified group generation id is not valid": 2 of
 * 8,400 delivered twice in a graceful 1 → 3 → 1 in CI). kafkajs has no hook for this, so its
 * ConsumerGroup's joinAndSync first runs the hold a REBALANCING listener has registered for the
 * member. The group waits for a member of the current generation to rejoin (up to the rebalance
 * timeout), and takes its commits meanwhile, so the partitions move with nothing of theirs in
 * flight. kafkajs 2.2.4 is its last release, so what this patches no longer changes; `install`
 * checks it is there all the same.
 */
export function holdNextRejoin(memberId: string, hold: RejoinHold): void {
  install();
  holds.set(memberId, hold);
}

function install(): void {
  if (installed) return;
  const consumerGroup = kafkajsPrototype<ConsumerGroupInternals>(
    'kafkajs/src/consumer/consumerGroup.js',
    'ConsumerGroup',
    ['joinAndSync', 'heartbeat'],
    'the rejoin hold',
  );
  const joinAndSync = consumerGroup.joinAndSync;
  consumerGroup.joinAndSync = async function (this: ConsumerGroupInternals) {
    const hold = this.memberId === null ? undefined : holds.get(this.memberId);
    if (hold) {
      holds.delete(this.memberId!);
      // The answer is "rebalance in progress"; sending it still keeps the session alive.
      await hold(() => this.heartbeat({ interval: 0 }).catch(() => {}));
    }
    return joinAndSync.call(this);
  };
  installed = true;
}
