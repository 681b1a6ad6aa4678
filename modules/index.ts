/** Every module kvmconf knows, by the name playbooks use. */
import type { Module } from '../src/module.js';
import { sysctl } from './sysctl.js';
import { thp } from './thp.js';

export const MODULES: Module[] = [sysctl, thp].map((module) => module as Module);

export const MODULES_BY_NAME = new Map(MODULES.map((module) => [module.name, module]));
