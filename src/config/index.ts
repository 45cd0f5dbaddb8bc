export { ConfigError, type ConfigVariable, DEFAULTS, loadConfig, VERSION } from './config.js';
export { parseDurationMs, parseList } from './parse.js';
export type { Config } from './types.js';
