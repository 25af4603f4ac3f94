// Drives the official OpenAI and Anthropic SDKs, unmodified, against a running
// cloudkeys relay (SPEC §8). Started by the Go test that runs cloudkeys and a fake
// provider; see README.md for the environment it reads.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';

const required = ['CLOUDKEYS_RELAY_BASE', 'OPENAI_RELAY_KEY', 'ANTHROPIC_RELAY_KEY', 'EXPECT_TEXT'];
const missing = required.filter((name) => !process.env[name]);
if (missing.length > 0) {
  throw new Error(`sdktest: set ${missing.join(', ')} (see sdktest/README.md)`);
}

const BASE = process.env.CLOUDKEYS_RELAY_BASE.replace(/\/+$/, ''); // e.g. http://127.0.0.1:PORT/relay
const OPENAI_RELAY_KEY = process.env.OPENAI_RELAY_KEY;
const ANTHROPIC_RELAY_KEY = process.env.ANTHROPIC_RELAY_KEY;
const EXPECT_TEXT = process.env.EXPECT_TEXT;
const RESULT_FILE = process.env.SDKTEST_RESULT_FILE;

// A well-formed relay key that belongs to nobody.
const WRONG_KEY = 'ckr_' + 'A'.repeat(43);
const TIMEOUT_MS = 10_000;

const OPENAI_MODEL = 'gpt-4o-mini';
const ANTHROPIC_MODEL = 'claude-3-5-haiku-latest';
const PROMPT = [{ role: 'user', content: 'Say hello.' }];

// Usage each successful call saw, written to SDKTEST_RESULT_FILE for the Go test to
// compare with what the relay recorded: one {input, output} entry per call, so a relay
// key's totals are the sum of its provider's entries. The wrong-key calls count against
// nobody and are not listed.
const result = { openai: {}, anthropic: {} };

after(() => {
  if (RESULT_FILE) writeFileSync(RESULT_FILE, JSON.stringify(result, null, 2) + '\n');
});

// Credentials are passed explicitly (and organization/project nulled) so that no
// OPENAI_* / ANTHROPIC_* variable in the environment changes what is sent.
function openai(apiKey) {
  return new OpenAI({
    baseURL: BASE + '/v1',
    apiKey,
    organization: null,
    project: null,
    maxRetries: 0,
    timeout: TIMEOUT_MS,
  });
}

function anthropic(apiKey) {
  return new Anthropic({ baseURL: BASE, apiKey, maxRetries: 0, timeout: TIMEOUT_MS });
}

function assertCount(value, what) {
  assert.equal(typeof value, 'number', `${what} is a number (got ${JSON.stringify(value)})`);
  assert.ok(Number.isInteger(value) && value >= 0, `${what} is a non-negative integer (got ${value})`);
}

// The relay counts Anthropic's cache_creation_input_tokens and cache_read_input_tokens
// as input (SPEC §8 Usage), so the summary does too.
function anthropicInput(usage) {
  return usage.input_tokens + (usage.cache_creation_input_tokens ?? 0) + (usage.cache_read_input_tokens ?? 0);
}

test('OpenAI SDK: chat.completions.create (JSON)', async () => {
  const completion = await openai(OPENAI_RELAY_KEY).chat.completions.create({
    model: OPENAI_MODEL,
    messages: PROMPT,
  });
  assert.equal(completion.choices[0].message.content, EXPECT_TEXT);
  assert.ok(completion.usage, 'usage is present');
  assertCount(completion.usage.prompt_tokens, 'usage.prompt_tokens');
  assertCount(completion.usage.completion_tokens, 'usage.completion_tokens');
  result.openai.json = { input: completion.usage.prompt_tokens, output: completion.usage.completion_tokens };
});

test('OpenAI SDK: chat.completions.create (stream, include_usage)', async () => {
  const stream = await openai(OPENAI_RELAY_KEY).chat.completions.create({
    model: OPENAI_MODEL,
    messages: PROMPT,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.usage) usage = chunk.usage;
  }
  assert.ok(chunks > 1, `more than one chunk arrived (got ${chunks})`);
  assert.equal(text, EXPECT_TEXT);
  assert.ok(usage, 'a usage chunk arrived');
  assertCount(usage.prompt_tokens, 'usage.prompt_tokens');
  assertCount(usage.completion_tokens, 'usage.completion_tokens');
  result.openai.stream = { input: usage.prompt_tokens, output: usage.completion_tokens };
});

test('OpenAI SDK: a wrong relay key is an AuthenticationError (401)', async () => {
  await assert.rejects(
    openai(WRONG_KEY).chat.completions.create({ model: OPENAI_MODEL, messages: PROMPT }),
    (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `OpenAI.AuthenticationError, got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, 401);
      // The OpenAI SDK hands over body.error: {message, type, code}.
      assert.equal(typeof err.error?.message, 'string', 'OpenAI error shape: error.message');
      return true;
    },
  );
});

test('Anthropic SDK: messages.create (JSON)', async () => {
  const message = await anthropic(ANTHROPIC_RELAY_KEY).messages.create({
    model: ANTHROPIC_MODEL,
    max_tokens: 64,
    messages: PROMPT,
  });
  const text = message.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
  assert.equal(text, EXPECT_TEXT);
  assertCount(message.usage.input_tokens, 'usage.input_tokens');
  assertCount(message.usage.output_tokens, 'usage.output_tokens');
  result.anthropic.json = { input: anthropicInput(message.usage), output: message.usage.output_tokens };
});

test('Anthropic SDK: messages.stream', async () => {
  const stream = anthropic(ANTHROPIC_RELAY_KEY).messages.stream({
    model: ANTHROPIC_MODEL,
    max_tokens: 64,
    messages: PROMPT,
  });
  let text = '';
  let deltas = 0;
  stream.on('text', (delta) => {
    deltas++;
    text += delta;
  });
  const message = await stream.finalMessage();
  assert.ok(deltas > 1, `more than one text delta arrived (got ${deltas})`);
  assert.equal(text, EXPECT_TEXT);
  assert.equal(message.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), EXPECT_TEXT);
  assert.ok(message.usage, 'finalMessage().usage is present');
  assertCount(message.usage.input_tokens, 'usage.input_tokens');
  assertCount(message.usage.output_tokens, 'usage.output_tokens');
  // output_tokens here is message_delta's cumulative count, which replaces message_start's.
  result.anthropic.stream = { input: anthropicInput(message.usage), output: message.usage.output_tokens };
});

// Anthropic SDK 1.x sends apiKey as `Authorization: Bearer`; 0.x (and curl examples)
// send `x-api-key`. This call sends the relay key only in x-api-key, as 0.x did.
test('Anthropic SDK: relay key in x-api-key (as SDK 0.x sends it)', async () => {
  const client = new Anthropic({
    baseURL: BASE,
    apiKey: ANTHROPIC_RELAY_KEY,
    defaultHeaders: { 'x-api-key': ANTHROPIC_RELAY_KEY, Authorization: null },
    maxRetries: 0,
    timeout: TIMEOUT_MS,
  });
  const message = await client.messages.create({ model: ANTHROPIC_MODEL, max_tokens: 64, messages: PROMPT });
  assert.equal(message.content.filter((b) => b.type === 'text').map((b) => b.text).join(''), EXPECT_TEXT);
  assertCount(message.usage.input_tokens, 'usage.input_tokens');
  assertCount(message.usage.output_tokens, 'usage.output_tokens');
  result.anthropic.xApiKey = { input: anthropicInput(message.usage), output: message.usage.output_tokens };
});

test('Anthropic SDK: a wrong relay key is an AuthenticationError (401)', async () => {
  await assert.rejects(
    anthropic(WRONG_KEY).messages.create({ model: ANTHROPIC_MODEL, max_tokens: 64, messages: PROMPT }),
    (err) => {
      assert.ok(err instanceof Anthropic.AuthenticationError, `Anthropic.AuthenticationError, got ${err?.constructor?.name}: ${err?.message}`);
      assert.equal(err.status, 401);
      // The Anthropic SDK hands over the whole body: {type: "error", error: {type, message}}.
      assert.equal(err.error?.type, 'error', 'Anthropic error shape: type "error"');
      assert.equal(typeof err.error?.error?.message, 'string', 'Anthropic error shape: error.message');
      return true;
    },
  );
});
