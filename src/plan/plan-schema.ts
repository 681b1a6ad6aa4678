/** JSON Schema (draft-07) of the plan file, format version 1: every plan is validated against it on read. */
const text = { type: 'string' };
const nullableText = { type: ['string', 'null'] };
const sha = { type: 'string', pattern: '^[0-9a-f]{64}$' };
const input = { type: 'object', additionalProperties: false, required: ['source', 'sha256'], properties: { source: text, sha256: sha } };

const change = {
  type: 'object',
  additionalProperties: false,
  required: ['module', 'target', 'scope', 'before', 'after', 'status'],
  properties: {
    module: text,
    target: text,
    scope: { enum: ['runtime', 'persist', 'pending'] },
    before: nullableText,
    after: nullableText,
    reason: text,
    pendingOn: { enum: ['reboot', 'module-reload', 'guest-restart'] },
    diff: { type: 'object', additionalProperties: false, required: ['before', 'after', 'beforeHeader', 'afterHeader'], properties: { before: text, after: text, beforeHeader: text, afterHeader: text } },
    status: { enum: ['planned', 'pending'] },
    commands: { type: 'array', items: text },
  },
};

const task = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'module', 'tags', 'changes', 'diagnostics'],
  properties: {
    name: text,
    module: text,
    tags: { type: 'array', items: text },
    changes: { type: 'array', items: change },
    diagnostics: { type: 'array', items: { type: 'object', additionalProperties: false, required: ['severity', 'message'], properties: { severity: { enum: ['error', 'warning'] }, message: text } } },
    error: text,
  },
};

const fingerprint = {
  type: 'object',
  additionalProperties: false,
  required: ['facts', 'tasks', 'files'],
  properties: { facts: sha, tasks: { type: 'array', items: text }, files: { type: 'object', additionalProperties: text } },
};

const host = {
  type: 'object',
  additionalProperties: false,
  required: ['host', 'play', 'playIndex', 'status', 'tasks'],
  properties: {
    host: text,
    play: text,
    playIndex: { type: 'integer', minimum: 0 },
    status: { enum: ['ok', 'changed', 'pending', 'failed', 'unreachable', 'skipped'] },
    error: text,
    fingerprint,
    tasks: { type: 'array', items: task },
  },
};

export const PLAN_SCHEMA: Record<string, unknown> = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'formatVersion', 'toolVersion', 'createdAt', 'playbook', 'inventory', 'extraVars', 'extraVarsOmitted', 'hosts'],
  properties: {
    format: { const: 'kvmconf-plan' },
    formatVersion: { const: 1 },
    toolVersion: text,
    createdAt: { type: 'string', pattern: '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d+)?Z$' },
    playbook: input,
    inventory: { type: 'array', items: input },
    limit: text,
    tags: { type: 'array', items: text },
    skipTags: { type: 'array', items: text },
    extraVars: { type: 'object' },
    extraVarsOmitted: { type: 'array', items: text },
    hosts: { type: 'array', items: host },
  },
};
