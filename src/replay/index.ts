export { type RedriveOptions, type RedriveReport, redrive } from './redrive-deliveries.js';
export { type EventsRedriveOptions, type EventsRedriveReport, redriveEvents } from './redrive-events.js';
export { type ReplayOptions, type ReplayReport, replay } from './replay.js';
