import * as assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { type OpenAiStandIn, startOpenAiStandIn } from '../fixtures/model-standins/openai';

// The stand-in checks itself: what it accepts, refuses and streams follows OpenAI's published description.
const KEY = 'sk-proj-standin-test-key-0001';

async function post(standIn: OpenAiStandIn, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${standIn.baseUrl}/responses`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

const request = (extra: Record<string, unknown> = {}) => ({
  model: 'gpt-5.5',
  stream: true,
  input: [{ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] }],
  tools: [
    { type: 'function', name: 'exec_command', strict: false, parameters: { type: 'object', properties: { cmd: { type: 'string' } } } },
  ],
  ...extra,
});

describe('OpenAI Responses stand-in', () => {
  let standIn: OpenAiStandIn;
  beforeEach(async () => {
    standIn = await startOpenAiStandIn({
      apiKey: KEY,
      script: [
        () => ({ kind: 'function_call', name: 'exec_command', arguments: { cmd: 'ls' } }),
        (seen) => ({ kind: 'message', text: `saw ${seen.toolOutputs[0]?.output ?? 'nothing'}` }),
      ],
    });
  });
  afterEach(() => standIn.close());

  it('streams a scripted turn as server-sent events that follow the description, and picks the step by the tool outputs sent back', async () => {
    const first = await post(standIn, request());
    assert.equal(first.status, 200);
    const events = first.text
      .split('\n\n')
      .filter(Boolean)
      .map(
        (block) =>
          JSON.parse(
            block
              .split('\n')
              .find((line) => line.startsWith('data: '))!
              .slice(6),
          ) as Record<string, unknown>,
      );
    assert.deepEqual(
      // Deltas come in a few pieces: one name each here.
      events.map((event) => event.type).filter((type, index, all) => type !== all[index - 1]),
      [
        'response.created',
        'response.in_progress',
        'response.output_item.added',
        'response.function_call_arguments.delta',
        'response.function_call_arguments.done',
        'response.output_item.done',
        'response.completed',
      ],
    );
    assert.deepEqual(
      events.map((event) => event.sequence_number),
      events.map((_event, index) => index),
    );
    const call = (events.at(-1)?.response as { output: { call_id: string }[] }).output[0]!;
    const second = await post(
      standIn,
      request({
        input: [
          { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hello' }] },
          { type: 'function_call', call_id: call.call_id, name: 'exec_command', arguments: '{"cmd":"ls"}' },
          { type: 'function_call_output', call_id: call.call_id, output: 'README.md' },
        ],
      }),
    );
    assert.match(second.text, /"type":"response\.output_text\.delta"/);
    assert.match(second.text, /saw README\.md/);
    assert.deepEqual(standIn.selfCheck, []);
  });

  it('answers a malformed request as OpenAI does: 400 with message, type, param and code', async () => {
    const unknown = await post(standIn, request({ temprature: 1 }));
    assert.equal(unknown.status, 400);
    assert.deepEqual(JSON.parse(unknown.text), {
      error: { message: "Unknown parameter: 'temprature'.", type: 'invalid_request_error', param: 'temprature', code: 'unknown_parameter' },
    });
    const wrongType = JSON.parse((await post(standIn, request({ stream: 'yes' }))).text) as { error: { param: string; code: string } };
    assert.deepEqual([wrongType.error.param, wrongType.error.code], ['stream', 'invalid_type']);
    const badItem = JSON.parse((await post(standIn, request({ input: [{ type: 'message', role: 'wizard', content: 'x' }] }))).text) as {
      error: { param: string };
    };
    assert.match(badItem.error.param, /^input\[0\]/);
    const notJson = await post(standIn, '{"model":');
    assert.equal(notJson.status, 400);
    assert.match(notJson.text, /We could not parse the JSON body of your request/);
    assert.deepEqual(standIn.selfCheck, []);
  });

  it('takes the fields Codex sends beyond the description only from its named list, and records them', async () => {
    const answer = await post(
      standIn,
      request({
        client_metadata: { thread_id: 't' },
        input: [{ type: 'message', id: 'msg_1', role: 'user', content: [{ type: 'input_text', text: 'hello' }] }],
      }),
    );
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(standIn.requests.at(-1)?.extensions, ['client_metadata', 'input[].id (messages)']);
  });

  it('refuses a wrong or missing key with 401, other endpoints with 404, the WebSocket with 426, and lists its model', async () => {
    const wrong = await post(standIn, request(), { authorization: 'Bearer sk-proj-other-key-9999' });
    assert.equal(wrong.status, 401);
    assert.match(JSON.parse(wrong.text).error.message as string, /^Incorrect API key provided: sk-\*\*\*9999/);
    assert.equal((JSON.parse(wrong.text) as { error: { code: string } }).error.code, 'invalid_api_key');
    const none = await post(standIn, request(), { authorization: '' });
    assert.match(none.text, /You didn't provide an API key/);
    const other = await fetch(`${standIn.baseUrl}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}` },
      body: '{}',
    });
    assert.equal(other.status, 404);
    assert.match(await other.text(), /Invalid URL \(POST \/v1\/chat\/completions\)/);
    const socket = await new Promise<number>((done, fail) => {
      const upgrade = httpRequest(`${standIn.baseUrl}/responses`, {
        headers: { authorization: `Bearer ${KEY}`, upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-version': '13' },
      });
      upgrade.on('response', (response) => {
        response.resume();
        done(response.statusCode ?? 0);
      });
      upgrade.on('upgrade', () => fail(new Error('the stand-in accepted a WebSocket')));
      upgrade.on('error', fail);
      upgrade.end();
    });
    assert.equal(socket, 426);
    const models = (await (await fetch(`${standIn.baseUrl}/models`, { headers: { authorization: `Bearer ${KEY}` } })).json()) as {
      data: { id: string }[];
    };
    assert.deepEqual(
      models.data.map((model) => model.id),
      ['gpt-5.5'],
    );
    assert.deepEqual(standIn.selfCheck, []);
  });

  it('fails on demand: 429 with retry-after, 500, and a stream cut before response.completed', async () => {
    standIn.failWith({ status: 429, retryAfterSeconds: 7 });
    const limited = await post(standIn, request());
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '7');
    assert.equal((JSON.parse(limited.text) as { error: { code: string } }).error.code, 'rate_limit_exceeded');
    standIn.failWith({ status: 500 });
    assert.equal((await post(standIn, request())).status, 500);
    standIn.failWith({ status: 'brokenStream' });
    const broken = await post(standIn, request()).catch((error: Error) => ({ status: 0, text: error.message, headers: new Headers() }));
    assert.ok(!broken.text.includes('response.completed'), 'the stream ends before response.completed');
    standIn.failWith(undefined);
    assert.equal((await post(standIn, request())).status, 200);
    assert.deepEqual(standIn.selfCheck, []);
  });
});
