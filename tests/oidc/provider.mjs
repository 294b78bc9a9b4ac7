// A real OpenID provider for keygate's interop tests, on 127.0.0.1 only.
//
// Environment:
//   OIDC_PORT    port to listen on (required)
//   OIDC_KEYS    JSON file with the private signing JWKs; created with one RSA key if missing
//   OIDC_ROTATE  "1": put a new RSA key first, keep the old ones after it (rotation), save the file
//   OIDC_REDIRECT_URIS  comma-separated redirect URIs for the web client
//   OIDC_ACCESS_TTL     access token lifetime in seconds (default 600)
// Prints "ready <issuer>" on stdout once listening.
import fs from 'node:fs';
import http from 'node:http';
import crypto from 'node:crypto';
import Provider from 'oidc-provider';

const port = Number(process.env.OIDC_PORT);
if (!port) throw new Error('OIDC_PORT is required');
const issuer = `http://127.0.0.1:${port}`;
const keysFile = process.env.OIDC_KEYS;
const accessTtl = Number(process.env.OIDC_ACCESS_TTL || 600);

function newKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: crypto.randomBytes(8).toString('hex'), alg: 'RS256', use: 'sig' };
}

let keys = keysFile && fs.existsSync(keysFile) ? JSON.parse(fs.readFileSync(keysFile, 'utf8')) : [newKey()];
if (process.env.OIDC_ROTATE === '1') keys = [newKey(), ...keys];
if (keysFile) fs.writeFileSync(keysFile, JSON.stringify(keys), { mode: 0o600 });

const redirectUris = (process.env.OIDC_REDIRECT_URIS || 'http://127.0.0.1:1/cb').split(',');
const resource = 'urn:test:api';

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'agent-m2m',
      client_secret: 'm2m-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'tools other',
    },
    {
      client_id: 'agent-m2m-post',
      client_secret: 'm2m-post-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: 'tools other',
    },
    {
      client_id: 'web-app',
      client_secret: 'web-secret',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'openid offline_access tools other',
    },
  ],
  jwks: { keys },
  scopes: ['openid', 'offline_access', 'tools', 'other'],
  features: {
    clientCredentials: { enabled: true },
    devInteractions: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      // The default resource's tokens are for `agents`; any other resource indicator asked
      // for (RFC 8707) becomes the token's audience, so tests can see it was passed.
      getResourceServerInfo: (ctx, indicator) => ({
        scope: 'tools other',
        audience: indicator === resource ? 'agents' : indicator,
        accessTokenTTL: accessTtl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  pkce: { required: () => true },
  rotateRefreshToken: () => true,
  ttl: { ClientCredentials: accessTtl, AccessToken: accessTtl },
});

http.createServer(provider.callback()).listen(port, '127.0.0.1', () => {
  console.log(`ready ${issuer}`);
});
