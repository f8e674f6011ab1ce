// Replaced by build.ts at bundle time; from package.json in development.
declare const __KTS_VERSION__: string | undefined;
export const VERSION: string =
  typeof __KTS_VERSION__ !== 'undefined' ? __KTS_VERSION__ : (require('../package.json') as { version: string }).version;
