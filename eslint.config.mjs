// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

const noEditorApi = {
  patterns: [{ group: ['vscode'], message: 'src/core and src/infra stay free of the editor API: put editor code in src/vscode.' }],
  paths: [{ name: 'vscode', message: 'src/core and src/infra stay free of the editor API: put editor code in src/vscode.' }],
};

export default tseslint.config(
  {
    ignores: ['dist/**', 'out/**', 'node_modules/**', 'test-results/**', '.demo/**', '.vscode-test/**', 'test/fixtures/**/node_modules/**'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: false }],
      eqeqeq: ['error', 'smart'],
    },
  },
  {
    files: ['src/core/**/*.ts', 'src/infra/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', noEditorApi] },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          ...noEditorApi,
          patterns: [
            ...noEditorApi.patterns,
            {
              group: ['**/infra/**', '**/vscode/**', 'node:child_process', 'child_process'],
              message: 'src/core is pure logic: no side-effect adapters.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['webview-ui/**/*.ts'],
    languageOptions: { globals: { ...globals.browser } },
  },
);
