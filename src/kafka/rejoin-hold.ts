import { type KafkajsClass, kafkajsPrototype } from './kafkajs-internals.js';

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

/** What of kafkajs's ConsumerGroup the hold relies on. */
export const CONSUMER_GROUP: KafkajsClass = {
  modulePath: 'src/consumer/consumerGroup.js',
  className: 'ConsumerGroup',
  methods: ['joinAndSync', 'heartbeat'],
  fields: ['memberId'],
  fix: 'the rejoin hold',
};

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
 * whenever this member was the last to join ("Specified group generation id is not valid").
 * kafkajs has no hook for this, so its
 * ConsumerGroup's joinAndSync first runs the hold a REBALANCING listener has registered for the
 * member. The group waits for a member of the current generation to rejoin (up to the rebalance
 * timeout), and takes its commits meanwhile, so the partitions move with nothing of theirs in
 * flight. kafkajs 2.2.4 is its last release, so what this patches no longer changes; `install`
 * checks it is there all the same.
 */
export function holdNextRejoin(memberId: string, hold: RejoinHold): void {
  installRejoinHold();
  holds.set(memberId, hold);
}

/**
 * Forgets the hold registered for `memberId`, if any: the member joined again without it (a new
 * member id), or its consumer stopped. Otherwise holds of members that never rejoin would stay.
 */
export function dropRejoinHold(memberId: string): void {
  holds.delete(memberId);
}

/** Members with a hold registered (for tests and diagnostics). */
export function heldMembers(): string[] {
  return [...holds.keys()];
}

/** Patches ConsumerGroup once; called at start-up, so that a kafkajs it does not fit fails then. */
export function installRejoinHold(): void {
  if (installed) return;
  const consumerGroup = kafkajsPrototype<ConsumerGroupInternals>(CONSUMER_GROUP);
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
