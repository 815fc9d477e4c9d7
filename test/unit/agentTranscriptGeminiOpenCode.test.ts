import * as assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AGENT_PRESETS, TRANSCRIPT_PARSERS, findPreset } from '../../src/core/draft/agentPresets';
import { AgentTranscriptSchema } from '../../src/core/draft/agentTranscript';

// The two outputs were captured from the real runs of agentPresetsManual.test.ts (Gemini CLI 0.61.0, OpenCode 1.18.33,
// each in the process boundary against a model stand-in); only OpenCode's worktree path was rewritten.
const fixtures = resolve(__dirname, '..', '..', '..', 'test', 'fixtures', 'transcripts');
const read = (name: string) => readFileSync(join(fixtures, name), 'utf8');
const gemini = TRANSCRIPT_PARSERS['gemini-stream-json']!;
const opencode = TRANSCRIPT_PARSERS['opencode-json']!;

describe('Agent presets: Gemini CLI and OpenCode', () => {
  it('pin a version, a non-interactive command with the prompt, a key variable, a base URL variable and the hosts', () => {
    for (const id of ['gemini-cli', 'opencode']) {
      const preset = findPreset(id);
      assert.ok(preset, `${id} is offered`);
      assert.match(preset.version, /^\d+\.\d+\.\d+$/);
      assert.ok(preset.args.includes('{prompt}'));
      assert.ok(preset.hosts.length > 0 && preset.hosts.every((host) => /^[a-z0-9.-]+:443$/.test(host)));
      assert.ok(TRANSCRIPT_PARSERS[preset.transcript], `${id} has a transcript reader`);
      assert.ok(!Object.keys(preset.env).includes(preset.apiKeyVar), 'the key is a secret, never a fixed variable');
    }
    assert.deepEqual(
      AGENT_PRESETS.map((preset) => preset.id).filter((id) => id === 'gemini-cli' || id === 'opencode'),
      ['gemini-cli', 'opencode'],
    );
  });

  it("Gemini CLI's settings prelude is a data: URL Node can take from NODE_OPTIONS (no spaces to split on)", () => {
    const options = findPreset('gemini-cli')!.env.NODE_OPTIONS!;
    assert.match(options, /^--import=data:text\/javascript,\S+$/);
    const code = decodeURIComponent(options.slice('--import=data:text/javascript,'.length));
    assert.match(code, /selectedType.*gemini-api-key/);
    assert.match(code, /usageStatisticsEnabled.*false/);
    assert.match(code, /delete process\.env\.NODE_OPTIONS/);
  });

  it("OpenCode's config is valid JSON whose provider takes base URL, key and model from the environment", () => {
    const preset = findPreset('opencode')!;
    const config = JSON.parse(preset.env.OPENCODE_CONFIG_CONTENT!) as {
      provider: Record<string, { npm: string; options: { baseURL: string; apiKey: string } }>;
      model: string;
    };
    assert.equal(config.provider.lanes?.npm, '@ai-sdk/openai-compatible');
    assert.equal(config.provider.lanes?.options.baseURL, `{env:${preset.baseUrlVar}}`);
    assert.equal(config.provider.lanes?.options.apiKey, `{env:${preset.apiKeyVar}}`);
    assert.equal(preset.env[preset.baseUrlVar], preset.defaultBaseUrl, 'the vendor URL unless the agent is pointed elsewhere');
    assert.equal(config.model, 'lanes/{env:LANES_OPENCODE_MODEL}');
  });
});

describe('Transcript: Gemini CLI stream-json', () => {
  it('reads a real run: tool calls, commands with their exit codes, tokens, the model and the last message', () => {
    const transcript = gemini(read('gemini-cli-0.61.0.jsonl'))!;
    assert.deepEqual(AgentTranscriptSchema.parse(transcript), transcript);
    assert.deepEqual(transcript, {
      format: 'gemini-stream-json',
      model: 'gemini-3.8-flash',
      usage: { inputTokens: 600, outputTokens: 60 },
      toolCalls: [
        { name: 'write_file', input: '{"file_path":"hello.txt","content":"hello from gemini\\n"}' },
        { name: 'run_shell_command', input: '{"command":"cat hello.txt > ran.txt && git status --short","description":"Copy and check"}' },
        { name: 'run_shell_command', input: '{"command":"exit 3","description":"A failing check"}' },
      ],
      commands: [
        { command: 'cat hello.txt > ran.txt && git status --short', exitCode: 0 },
        { command: 'exit 3', exitCode: 3 },
      ],
      finalMessage: 'Created hello.txt and ran the checks.',
      unreadLines: 0,
    });
  });

  it('joins assistant deltas, counts other lines as unread, and reports a command that could not run with exit code null', () => {
    const output = [
      'YOLO mode is enabled.',
      JSON.stringify({ type: 'init', model: 'gemini-2.5-pro' }),
      JSON.stringify({ type: 'message', role: 'assistant', content: 'Work', delta: true }),
      JSON.stringify({ type: 'message', role: 'assistant', content: 'ing.', delta: true }),
      JSON.stringify({ type: 'tool_use', tool_name: 'run_shell_command', tool_id: 't1', parameters: { command: 'npm test' } }),
      JSON.stringify({ type: 'tool_result', tool_id: 't1', status: 'error', error: { message: 'denied' } }),
      JSON.stringify({ type: 'message', role: 'assistant', content: 'Done', delta: true }),
      JSON.stringify({ type: 'message', role: 'assistant', content: '.', delta: true }),
      '{"type":"result","stat',
    ].join('\n');
    const transcript = gemini(output)!;
    assert.equal(transcript.model, 'gemini-2.5-pro', 'the init model when no result names one');
    assert.deepEqual(transcript.commands, [{ command: 'npm test', exitCode: null }]);
    assert.equal(transcript.finalMessage, 'Done.');
    assert.equal(transcript.unreadLines, 2);
    assert.equal(transcript.usage, undefined);
  });

  it('is undefined for plain text, and caps long inputs and commands', () => {
    assert.equal(gemini('Hello\nI wrote the file.\n'), undefined);
    const long = 'x'.repeat(5_000);
    const transcript = gemini(
      JSON.stringify({ type: 'tool_use', tool_name: 'run_shell_command', tool_id: 'a', parameters: { command: long } }),
    )!;
    assert.ok(transcript.toolCalls[0]!.input.length <= 500);
    assert.equal(transcript.commands[0]!.command.length, 1000);
    assert.deepEqual(AgentTranscriptSchema.parse(transcript), transcript);
  });
});

describe('Transcript: OpenCode run --format json', () => {
  it('reads a real run: tool calls, commands with their exit codes, tokens summed over steps, and the last message', () => {
    const transcript = opencode(read('opencode-1.18.33.jsonl'))!;
    assert.deepEqual(AgentTranscriptSchema.parse(transcript), transcript);
    assert.deepEqual(transcript, {
      format: 'opencode-json',
      usage: { inputTokens: 600, outputTokens: 80 },
      toolCalls: [
        { name: 'apply_patch', input: '{"patchText":"*** Begin Patch\\n*** Add File: hello.txt\\n+hello from opencode\\n*** End Patch"}' },
        { name: 'bash', input: '{"command":"cat hello.txt > ran.txt && git status --short","description":"Copy and check"}' },
        { name: 'bash', input: '{"command":"exit 3","description":"A failing check"}' },
      ],
      commands: [
        { command: 'cat hello.txt > ran.txt && git status --short', exitCode: 0 },
        { command: 'exit 3', exitCode: 3 },
      ],
      finalMessage: 'Created hello.txt and ran the checks.',
      unreadLines: 0,
    });
  });

  it('reads error events as the format, counts other lines as unread, and a bash call without an exit status as null', () => {
    const output = [
      'some banner',
      JSON.stringify({ type: 'tool_use', part: { type: 'tool', tool: 'bash', state: { status: 'error', input: { command: 'make' } } } }),
      JSON.stringify({ type: 'error', error: { name: 'APIError', data: { message: 'rate limited' } } }),
      JSON.stringify({ type: 'text', part: { type: 'text', text: 'Stopped.' } }),
    ].join('\n');
    const transcript = opencode(output)!;
    assert.deepEqual(transcript.commands, [{ command: 'make', exitCode: null }]);
    assert.equal(transcript.finalMessage, 'Stopped.');
    assert.equal(transcript.unreadLines, 1);
    assert.equal(transcript.usage, undefined);
    assert.equal(opencode('plain text only'), undefined);
  });

  it('keeps at most 500 tool calls', () => {
    const line = JSON.stringify({ type: 'tool_use', part: { type: 'tool', tool: 'read', state: { input: { filePath: 'a.ts' } } } });
    const transcript = opencode(Array.from({ length: 600 }, () => line).join('\n'))!;
    assert.equal(transcript.toolCalls.length, 500);
    assert.deepEqual(AgentTranscriptSchema.parse(transcript), transcript);
  });
});
