import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { AgentTranscriptSchema } from '../../src/core/draft/agentTranscript';
import { CODEX_TRANSCRIPT } from '../../src/core/draft/presets/codex';

// The --json output of Codex CLI 0.171.0 as its end-to-end test recorded it (agentPresetCodex.test.ts).
const recorded = readFileSync(resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'agents', 'codex-exec.jsonl'), 'utf8');
const parse = CODEX_TRANSCRIPT!;

describe('Codex transcript (codex exec --json)', () => {
  it('reads the real output: tool calls, commands with their exit codes, usage and the final message', () => {
    const transcript = parse(recorded);
    assert.ok(transcript);
    assert.ok(AgentTranscriptSchema.safeParse(transcript).success);
    assert.equal(transcript.format, 'codex-jsonl');
    assert.deepEqual(
      transcript.toolCalls.map((call) => call.name),
      ['exec_command', 'exec_command', 'apply_patch', 'exec_command'],
    );
    assert.match(transcript.toolCalls[2]!.input, /^update .*\/src\/math\.js, add .*\/test\/multiply\.test\.js$/);
    assert.deepEqual(transcript.commands, [
      { command: "/bin/bash -lc 'cat README.md src/math.js'", exitCode: 0 },
      { command: `/bin/bash -lc "node -e \\"console.log('sum', require('./src/math').add(2, 3))\\""`, exitCode: 0 },
      { command: "/bin/bash -lc 'ls no-such-folder'", exitCode: 2 },
    ]);
    assert.deepEqual(transcript.usage, { inputTokens: 38268, outputTokens: 115 });
    assert.equal(transcript.finalMessage, 'Added multiply() to src/math.js and a test for it in test/multiply.test.js.');
    assert.equal(transcript.model, undefined, 'the events do not name the model');
    assert.equal(transcript.unreadLines, 0);
  });

  it('counts each command once (only completed items), sums usage over turns, and keeps a failed turn’s message', () => {
    const lines = [
      '{"type":"item.started","item":{"id":"a","type":"command_execution","command":"true","exit_code":null,"status":"in_progress"}}',
      '{"type":"item.completed","item":{"id":"a","type":"command_execution","command":"true","exit_code":0,"status":"completed"}}',
      'a line that is not JSON',
      '{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":4,"output_tokens":2}}',
      '{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":0,"output_tokens":1}}',
      '{"type":"turn.failed","error":{"message":"unexpected status 401 Unauthorized"}}',
    ];
    const transcript = parse(lines.join('\n'))!;
    assert.deepEqual(transcript.commands, [{ command: 'true', exitCode: 0 }]);
    assert.deepEqual(transcript.usage, { inputTokens: 15, outputTokens: 3, cacheReadTokens: 4 });
    assert.equal(transcript.finalMessage, 'unexpected status 401 Unauthorized');
    assert.equal(transcript.unreadLines, 1);
  });

  it('is undefined for output with no Codex event in it, and cuts what is too long', () => {
    assert.equal(parse('hello\nworld\n'), undefined);
    const long = parse(
      JSON.stringify({ type: 'item.completed', item: { type: 'command_execution', command: 'x'.repeat(5000), exit_code: 1 } }),
    )!;
    assert.equal(long.commands[0]!.command.length, 1000);
    assert.equal(long.toolCalls[0]!.input.length, 500);
  });
});
