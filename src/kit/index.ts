/**
 * The module toolkit: everything a module in modules/ may use from kvmconf itself.
 * Modules import from here only, never from the engine, so the engine can change
 * without touching them and a module's whole life stays in its own folder.
 */
export * from './module.js';
export * from './claims.js';
export * from './shell.js';
export * from './remote-lib.js';
export { awkReader, configGlobs, readWith, type AwkReader } from './awk-reader.js';
export * from './host-facts.js';
export { CPULIST_PATTERN, cpuMask, parseCpuMask } from './cpu-list.js';
export { InputError } from '../errors.js';
