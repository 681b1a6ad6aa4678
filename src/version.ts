/** The version printed by --version and stamped into every report. */
import { readFileSync } from 'node:fs';

export const TOOL_VERSION: string = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
