// kivitendo's web UI starts the task server from inside a web request (SL::System::TaskServer runs
// `scripts/task_server.pl start` with system()), so the daemon inherits that request's environment:
// HTTP_COOKIE with the user's session id, REQUEST_METHOD, REMOTE_ADDR and the rest of the CGI
// variables. kivitendo's Perl code reads some of them wherever it runs (CGI's cookie(), which
// SL::Auth::restore_session asks for the session; REMOTE_ADDR in auth.session rows), so a daemon
// that kept them would run every job inside that user's web request. They are removed once, at
// start-up, before anything is spawned; what an admin sets on purpose (PATH, LANG, TZ, PERL5LIB,
// proxy settings, ...) stays.

/** The CGI/1.1 meta-variables (RFC 3875 §4.1) and what Apache, mod_fcgid and mod_ssl add to them. */
const WEB_REQUEST_VARIABLES = new Set([
  'AUTH_TYPE',
  'CONTENT_LENGTH',
  'CONTENT_TYPE',
  'GATEWAY_INTERFACE',
  'PATH_INFO',
  'PATH_TRANSLATED',
  'QUERY_STRING',
  'REMOTE_ADDR',
  'REMOTE_HOST',
  'REMOTE_IDENT',
  'REMOTE_PORT',
  'REMOTE_USER',
  'REQUEST_METHOD',
  'REQUEST_SCHEME',
  'REQUEST_URI',
  'SCRIPT_FILENAME',
  'SCRIPT_NAME',
  'SCRIPT_URI',
  'SCRIPT_URL',
  'SERVER_ADDR',
  'SERVER_ADMIN',
  'SERVER_NAME',
  'SERVER_PORT',
  'SERVER_PROTOCOL',
  'SERVER_SIGNATURE',
  'SERVER_SOFTWARE',
  'DOCUMENT_ROOT',
  'DOCUMENT_URI',
  'CONTEXT_DOCUMENT_ROOT',
  'CONTEXT_PREFIX',
  'HTTPS',
  'UNIQUE_ID',
  'FCGI_ROLE',
  'FCGI_APACHE_ROLE',
]);

/** Request headers become HTTP_<NAME>; mod_ssl's SSL_* and mod_rewrite's REDIRECT_* are per request too. */
const WEB_REQUEST_PREFIXES = ['HTTP_', 'SSL_', 'REDIRECT_'];
/** OpenSSL's own settings, which an admin may well have set: not mod_ssl's. */
const ADMIN_SETTINGS = new Set(['SSL_CERT_FILE', 'SSL_CERT_DIR']);

/**
 * Whether the environment is a web request's (a CGI gateway, a request method or a cookie). Only
 * then is anything removed: elsewhere an HTTP_PROXY is an admin's proxy setting, not the request's
 * `Proxy:` header (the "httpoxy" hole).
 */
export function isWebRequestEnvironment(env: NodeJS.ProcessEnv): boolean {
  return env.GATEWAY_INTERFACE !== undefined || env.REQUEST_METHOD !== undefined || env.HTTP_COOKIE !== undefined;
}

/** The names of the web request's variables in env, in the order found; none outside a web request. */
export function webRequestVariables(env: NodeJS.ProcessEnv): string[] {
  if (!isWebRequestEnvironment(env)) return [];
  return Object.keys(env).filter(
    (name) => !ADMIN_SETTINGS.has(name) && (WEB_REQUEST_VARIABLES.has(name) || WEB_REQUEST_PREFIXES.some((p) => name.startsWith(p))),
  );
}

/** Removes the web request's variables from env (in place); returns their names. */
export function dropWebRequestEnvironment(env: NodeJS.ProcessEnv = process.env): string[] {
  const names = webRequestVariables(env);
  for (const name of names) delete env[name];
  return names;
}
