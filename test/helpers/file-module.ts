/**
 * A test-only module that owns one file: the engine's integration tests use it so
 * they exercise real SSH, sudo and shell without retuning the machine they run on.
 * `slow` adds a step that sleeps, to cut a connection in the middle of an apply.
 */
import { defineModule, type Module } from '../../src/kit/module.js';
import { catFileProbe, parseFileBlock, writeFileCommand } from '../../src/kit/remote-lib.js';
import { sh } from '../../src/kit/shell.js';

export interface FileParams {
  path: string;
  content: string;
  /** A step that sleeps before the write: true for 5 s, or the seconds given. */
  slow?: boolean | number;
  probe_sleep?: number;
}

export const fileModule = defineModule<FileParams, string | null>({
  name: 'test_file',
  summary: 'a whole file (tests only)',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['path', 'content'],
    properties: { path: { type: 'string', pattern: '^/[A-Za-z0-9_./-]+$' }, content: { type: 'string' }, slow: { anyOf: [{ type: 'boolean' }, { type: 'integer', minimum: 1 }] }, probe_sleep: { type: 'integer' } },
  },
  claims: (params) => [{ kind: 'file', path: params.path }],
  probe: (params) => `${params.probe_sleep ? `sleep ${params.probe_sleep}; ` : ''}${catFileProbe(params.path)}`,
  parse: (output) => parseFileBlock(output),
  diff: (params, actual) =>
    actual === params.content ? [] : [
      ...(params.slow ? [{
        module: 'test_file', target: `${params.path}.marker`, scope: 'runtime' as const, before: null, after: 'slow',
        commands: [sh`touch ${`${params.path}.started`}`, sh`sleep ${params.slow === true ? 5 : Number(params.slow)}`],
      }] : []),
      { module: 'test_file', target: params.path, scope: 'persist', before: actual, after: params.content, commands: [writeFileCommand(params.path, params.content, actual, '0600')] },
    ],
});

export const TEST_MODULES = new Map<string, Module>([['test_file', fileModule as Module]]);
