// The whole dashboard flow against a live cloudkeys: sign up and in, store a
// credential, test it, make a relay key, call the provider through the relay
// with the openai SDK, read the usage, survive an expired access token (the
// auth link refreshes once and retries, also with two "tabs" sharing one
// session), revoke, delete, sign out.
//
// Run by server/dashboard_example_test.go against the real server and a fake
// provider. By hand, against a development server:
//
//   CLOUDKEYS_ACCESS_TOKEN_TTL=5s CLOUDKEYS_ALLOW_PRIVATE_BASE_URLS=true go run . serve
//   CLOUDKEYS_SERVER=http://127.0.0.1:8080 PROVIDER_BASE_URL=http://127.0.0.1:9999 npm run flow
//
// Environment:
//   CLOUDKEYS_SERVER        the server (required)
//   PROVIDER_BASE_URL       an OpenAI-protocol provider the server may reach (required)
//   PROVIDER_API_KEY        the key stored for it (default: a made-up one)
//   EXPECT_TEXT             what the provider answers, when known
//   DASHBOARD_EMAIL, DASHBOARD_PASSWORD
//                           the account (default: a new one; on a fresh development
//                           server the first account is an approved admin)
//   CLOUDKEYS_TEST_CLOCK_URL
//                           tests only: POST {"advance": "16m"} here moves the
//                           server's clock, so the access token expires at once.
//                           Without it the flow waits until the token has
//                           expired (expiresAt + the server's 30 s of allowed
//                           skew): start the server with a short
//                           CLOUDKEYS_ACCESS_TOKEN_TTL.
//   FLOW_RESULT_FILE        where to write what the flow did, as JSON
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import OpenAI from 'openai';
import { CombinedGraphQLErrors, type ApolloClient } from '@apollo/client';
import { hasWebLocks, memoryStore, post, sharedAcrossTabs, type Tokens } from './auth.js';
import { createClient } from './client.js';
import {
  CloudCredentialDocument,
  CloudCredentialsDocument,
  CloudProvidersDocument,
  CreateCloudCredentialDocument,
  CreateRelayKeyDocument,
  CredentialUsageDocument,
  DeleteCloudCredentialDocument,
  LoginDocument,
  MeDocument,
  RegisterDocument,
  RelayKeysDocument,
  RevokeRelayKeyDocument,
  TestCloudCredentialDocument,
  UpdateCloudCredentialDocument,
} from './operations.js';
import { ownerRelayClient, relayClient } from './relay.js';

function env(name: string, fallback?: string): string {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`flow: set ${name} (see the top of src/flow.ts)`);
  return v;
}

const SERVER = env('CLOUDKEYS_SERVER').replace(/\/+$/, '');
const PROVIDER = env('PROVIDER_BASE_URL');
const PROVIDER_KEY = env('PROVIDER_API_KEY', 'sk-dashboard-example-provider-key');
const EXPECT_TEXT = process.env.EXPECT_TEXT;
const EMAIL = env('DASHBOARD_EMAIL', `dashboard-${Date.now()}@example.com`);
const PASSWORD = env('DASHBOARD_PASSWORD', 'correct horse battery');
const CLOCK = process.env.CLOUDKEYS_TEST_CLOCK_URL;
const MODEL = 'gpt-4o-mini';

const result: Record<string, unknown> = { webLocks: hasWebLocks() };
const step = (what: string) => console.log(`flow: ${what}`);

/**
 * Throws unless an Apollo result has data and no error. (With Apollo's
 * default errorPolicy "none", query and mutate already reject on a GraphQL
 * error; the calls that expect one pass errorPolicy "all".)
 */
function ok<T>(r: { data?: T | null | undefined; error?: unknown }, what: string): T {
  if (r.error) throw new Error(`${what}: ${String(r.error)}`);
  if (r.data == null) throw new Error(`${what}: no data`);
  return r.data;
}

/** The access token expires: the server's clock moves past it, or we wait. */
async function expireAccessToken(tokens: Tokens): Promise<void> {
  if (CLOCK) {
    const res = await fetch(CLOCK, { method: 'POST', body: JSON.stringify({ advance: '16m' }) });
    assert.equal(res.status, 204, 'the test clock moved');
    return;
  }
  const wait = Date.parse(tokens.expiresAt) + 31_000 - Date.now();
  step(`waiting ${Math.ceil(wait / 1000)} s for the access token to expire (expiresAt + 30 s of skew)`);
  await new Promise((r) => setTimeout(r, Math.max(0, wait)));
}

// Queries go to the server every time here (fetchPolicy network-only): the
// flow checks what the server answers, not Apollo's cache.
async function me(client: ApolloClient) {
  return ok(await client.query({ query: MeDocument, fetchPolicy: 'network-only' }), 'me').me;
}

async function main(): Promise<void> {
  const signedOut: string[] = [];
  const tabA = sharedAcrossTabs(memoryStore());
  const { client, auth } = createClient({
    server: SERVER,
    store: tabA,
    onSignedOut: (reason) => {
      signedOut.push(reason);
      void client.clearStore();
    },
  });

  step(`register ${EMAIL}`);
  const reg = await client.mutate({
    mutation: RegisterDocument,
    variables: { input: { email: EMAIL, password: PASSWORD } },
    errorPolicy: 'all', // answer { data, error } rather than throw
  });
  // CONFLICT: the account exists already (DASHBOARD_EMAIL given); sign in to it.
  const taken = CombinedGraphQLErrors.is(reg.error) && reg.error.errors.every((e) => e.extensions?.code === 'CONFLICT');
  if (reg.error && !taken) throw new Error(`register: ${String(reg.error)}`);

  step('login');
  const login = ok(await client.mutate({ mutation: LoginDocument, variables: { email: EMAIL, password: PASSWORD } }), 'login').login;
  assert.ok(login, 'login answered');
  assert.equal(login.tokenType, 'Bearer');
  assert.match(login.expiresAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'Time is RFC 3339 UTC with milliseconds');
  auth.signedIn(login);
  result.userId = login.user.id;

  const who = await me(client);
  assert.equal(who?.email, EMAIL);
  assert.equal(who?.status, 'APPROVED', 'the account is approved (the first one on a fresh development server is)');
  assert.equal(who?.sessions?.filter((s) => s.current).length, 1, 'me.sessions shows this session as current');
  assert.equal(new Date(who.createdAt).toISOString(), who.createdAt, 'a Time round-trips through Date');

  step('credentials: providers, create, list, read, update');
  const providers = ok(await client.query({ query: CloudProvidersDocument, fetchPolicy: 'network-only' }), 'cloudProviders').cloudProviders;
  assert.ok(providers.some((p) => p.backendType === 'OPENAI_COMPATIBLE' && p.apiType === 'OPENAI'));
  const cred = ok(
    await client.mutate({
      mutation: CreateCloudCredentialDocument,
      variables: { input: { name: 'fake OpenAI', backendType: 'OPENAI_COMPATIBLE', apiKey: PROVIDER_KEY, baseUrl: PROVIDER } },
    }),
    'createCloudCredential',
  ).createCloudCredential;
  assert.ok(cred);
  assert.equal(cred.keyStatus, 'OK');
  assert.ok(!cred.apiKeyHint.includes(PROVIDER_KEY), 'only a hint of the key comes back');
  result.credentialId = cred.id;
  const list = ok(await client.query({ query: CloudCredentialsDocument, fetchPolicy: 'network-only' }), 'cloudCredentials').cloudCredentials;
  assert.ok(list?.some((c) => c.id === cred.id));
  const one = ok(await client.query({ query: CloudCredentialDocument, variables: { id: cred.id }, fetchPolicy: 'network-only' }), 'cloudCredential').cloudCredential;
  assert.equal(one?.baseUrl, PROVIDER);
  const renamed = ok(
    await client.mutate({ mutation: UpdateCloudCredentialDocument, variables: { id: cred.id, input: { name: 'fake OpenAI (renamed)' } } }),
    'updateCloudCredential',
  ).updateCloudCredential;
  assert.equal(renamed?.name, 'fake OpenAI (renamed)');

  step('testCloudCredential');
  const probe = ok(await client.mutate({ mutation: TestCloudCredentialDocument, variables: { id: cred.id } }), 'testCloudCredential')
    .testCloudCredential;
  assert.equal(probe?.ok, true, `the provider answered: ${probe?.message}`);
  assert.ok(probe?.models?.includes(MODEL), `the provider lists ${MODEL}`);

  step('relay key');
  const created = ok(
    await client.mutate({
      mutation: CreateRelayKeyDocument,
      variables: { input: { credentialId: cred.id, name: 'dashboard example', allowedModels: [MODEL] } },
    }),
    'createRelayKey',
  ).createRelayKey;
  assert.ok(created);
  assert.ok(created.secret.startsWith('ckr_'));
  result.relayKeyId = created.relayKey.id;
  const keys = ok(await client.query({ query: RelayKeysDocument, fetchPolicy: 'network-only' }), 'relayKeys').relayKeys;
  assert.ok(keys?.some((k) => k.id === created.relayKey.id && k.credential.id === cred.id));

  step('chat.completions through the relay (openai SDK, relay key)');
  const openai = relayClient(SERVER, created.secret);
  const chat = await openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'Say hello.' }] });
  const text = chat.choices[0]?.message.content ?? '';
  if (EXPECT_TEXT) assert.equal(text, EXPECT_TEXT);
  assert.ok(chat.usage, 'the provider reported usage');
  result.sdkUsage = { input: chat.usage.prompt_tokens, output: chat.usage.completion_tokens };

  step('models through the owner path (openai SDK, access token)');
  const owned = await ownerRelayClient(SERVER, cred.id, auth.accessToken ?? '').models.list();
  assert.ok(owned.data.some((m) => m.id === MODEL));

  step('usage (written in batches: polled until it shows)');
  let usage;
  for (let i = 0; ; i++) {
    usage = ok(await client.query({ query: CredentialUsageDocument, variables: { id: cred.id, days: 7 }, fetchPolicy: 'network-only' }), 'usage').cloudCredential;
    if (usage && usage.usage.requests >= 2) break;
    if (i >= 150) throw new Error(`usage never showed the two relayed calls: ${JSON.stringify(usage?.usage)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const keyUsage = usage.relayKeys.find((k) => k.id === created.relayKey.id)?.usage;
  assert.deepEqual(
    { requests: keyUsage?.requests, input: keyUsage?.inputTokens, output: keyUsage?.outputTokens },
    { requests: 1, input: chat.usage.prompt_tokens, output: chat.usage.completion_tokens },
    'the relay key counted what the SDK saw',
  );
  assert.equal(usage.usageByDay.length, 7);
  assert.equal(typeof usage.usage.inputTokens, 'number', 'Count is a number');
  result.keyUsage = keyUsage;

  step('the access token expires: the auth link refreshes once and retries');
  const before = tabA.get();
  assert.ok(before);
  await expireAccessToken(before);
  const stale = await post(`${SERVER}/graphql`, MeDocument, {}, before.accessToken);
  assert.equal(stale.errors?.[0]?.extensions?.reason, 'TOKEN_EXPIRED', 'the server says the token expired');
  const refreshesBefore = auth.refreshes;
  const three = await Promise.all([me(client), me(client), me(client)]);
  assert.ok(three.every((m) => m?.email === EMAIL), 'all three requests succeeded after the refresh');
  assert.equal(auth.refreshes - refreshesBefore, 1, 'three requests that met TOKEN_EXPIRED together refreshed once');
  assert.notEqual(tabA.get()?.accessToken, before.accessToken, 'a new access token is stored');
  assert.notEqual(tabA.get()?.refreshToken, before.refreshToken, 'the refresh token rotated');

  step('two tabs of one session (a duplicated tab): both survive an expiry');
  const tabB = sharedAcrossTabs(memoryStore());
  tabB.set(tabA.get()); // as a duplicated tab copies sessionStorage
  const second = createClient({ server: SERVER, store: tabB, onSignedOut: (r) => signedOut.push(`tab B: ${r}`) });
  await expireAccessToken(tabA.get()!);
  const [a, b] = await Promise.all([me(client), me(second.client)]);
  assert.equal(a?.email, EMAIL);
  assert.equal(b?.email, EMAIL);
  assert.equal(signedOut.length, 0, `nobody was signed out (${signedOut.join(', ')})`);
  await new Promise((r) => setTimeout(r, 50)); // let the last broadcast arrive
  assert.equal((await me(second.client))?.email, EMAIL, 'tab B still works');
  assert.equal((await me(client))?.email, EMAIL, 'tab A still works');
  result.tabRefreshes = auth.refreshes + second.auth.refreshes - refreshesBefore - 1;
  second.client.stop();

  step('revoke the relay key: the SDK gets a 401');
  const revoked = ok(await client.mutate({ mutation: RevokeRelayKeyDocument, variables: { id: created.relayKey.id } }), 'revokeRelayKey')
    .revokeRelayKey;
  assert.ok(revoked?.revokedAt);
  await assert.rejects(
    openai.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'again' }] }),
    (e: unknown) => e instanceof OpenAI.AuthenticationError && e.status === 401,
  );

  step('delete the credential');
  const deleted = ok(await client.mutate({ mutation: DeleteCloudCredentialDocument, variables: { id: cred.id } }), 'deleteCloudCredential');
  assert.equal(deleted.deleteCloudCredential, true);
  const missing = await client.query({ query: CloudCredentialDocument, variables: { id: cred.id }, fetchPolicy: 'network-only', errorPolicy: 'all' });
  assert.ok(CombinedGraphQLErrors.is(missing.error) && missing.error.errors[0]?.extensions?.code === 'NOT_FOUND', 'NOT_FOUND once deleted');

  step('sign out');
  const last = tabA.get()!;
  await auth.signOut();
  assert.equal(tabA.get(), null, 'the tokens are gone');
  const after = await client.query({ query: MeDocument, fetchPolicy: 'network-only', errorPolicy: 'all' });
  assert.equal(after.data?.me ?? null, null, 'me is null once signed out');
  assert.ok(CombinedGraphQLErrors.is(after.error), 'me answers an error once signed out');
  assert.equal(after.error.errors[0]?.extensions?.code, 'UNAUTHENTICATED');
  assert.equal(after.error.errors[0]?.extensions?.reason, 'TOKEN_MISSING', 'no token is sent any more');
  const ended = await post(`${SERVER}/graphql`, MeDocument, {}, last.accessToken);
  assert.equal(ended.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
  assert.equal(ended.errors?.[0]?.extensions?.reason, 'SESSION_ENDED', 'the old access token is refused: the session ended');
  assert.deepEqual(signedOut, ['SIGNED_OUT']);

  // A client holding a token of an ended session signs out by itself.
  const stray = createClient({ server: SERVER, store: memoryStore(), onSignedOut: (r) => signedOut.push(`stray: ${r}`) });
  stray.auth.store.set({ ...last });
  const strayMe = await stray.client.query({ query: MeDocument, fetchPolicy: 'network-only', errorPolicy: 'all' });
  assert.equal(strayMe.data?.me ?? null, null);
  assert.equal(stray.auth.store.get(), null, 'SESSION_ENDED signed the client out, without refreshing');
  assert.equal(stray.auth.refreshes, 0);
  assert.deepEqual(signedOut, ['SIGNED_OUT', 'stray: SESSION_ENDED']);
  stray.client.stop();

  client.stop();
  tabA.close();
  tabB.close();
  result.ok = true;
}

try {
  await main();
  step('done');
} finally {
  if (process.env.FLOW_RESULT_FILE) writeFileSync(process.env.FLOW_RESULT_FILE, JSON.stringify(result, null, 2) + '\n');
}
