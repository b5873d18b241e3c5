/*
 * jest for the TypeScript units in src/__tests__ (`jlpm test`; `make jest` from the root).
 * JupyterLab's preset: jsdom, ts-jest, the CSS and SVG mappers, and the ES-module packages
 * that must be transformed.
 */
const jestJupyterLab = require('@jupyterlab/testing/lib/jest-config');

const esModules = [
  '@codemirror',
  '@jupyter/ydoc',
  '@jupyter/react-components',
  '@jupyter/web-components',
  '@jupyterlab/',
  '@microsoft',
  'exenv-es6',
  'lib0',
  'nanoid',
  'vscode-ws-jsonrpc',
  'y-protocols',
  'y-websocket',
  'yjs'
].join('|');

const baseConfig = jestJupyterLab(__dirname);

module.exports = {
  ...baseConfig,
  automock: false,
  reporters: ['default'],
  collectCoverageFrom: ['src/**/*.{ts,tsx}', '!src/**/*.d.ts'],
  coverageReporters: ['text-summary'],
  testRegex: 'src/__tests__/.*\\.spec\\.tsx?$',
  modulePathIgnorePatterns: ['<rootDir>/lib/'],
  transformIgnorePatterns: [`/node_modules/(?!${esModules}).+`]
};
