export { configSchema, DEFAULT_CONFIG_FILE, ENV_OVERRIDES, type InferneoConfig, loadConfig, type LoadConfigOptions } from './config.js';
