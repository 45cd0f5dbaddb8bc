export { type Config, ConfigError, type ConfigVariable, DEFAULTS, loadConfig, VERSION } from './config.js';
export { parseDurationMs, parseList } from './parse.js';
