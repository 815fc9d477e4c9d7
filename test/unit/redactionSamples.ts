/**
 * Realistic (but fake) samples of every built-in secret format. Each sample is
 * the text as it would appear in a log or file, and the secret part that must
 * never survive redaction.
 */
export interface SecretSample {
  kind: string;
  text: string;
  secret: string;
}

const pem = (label: string) =>
  `-----BEGIN ${label}-----\nMIIEowIBAAKCAQEA7bq4Xk1Kc3QZtZ9v8Q2y0l9nB3c1oJ5h2K8wN4pX6rT0sQeVb\nq9wZx1LmNoPqRsTuVwXyZ0123456789abcdefGHIJKLmnopqrstuvWXyz+/AbCdEf\n-----END ${label}-----`;

const alnum = (length: number, seed = 7) => {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    out += chars[state % chars.length];
  }
  return out;
};
const hex = (length: number, seed = 3) => {
  let out = '';
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (state * 1103515245 + 12345) % 2147483648;
    out += (state % 16).toString(16);
  }
  return out;
};

const rsaKey = pem('RSA PRIVATE KEY');
const opensshKey = pem('OPENSSH PRIVATE KEY');
const gcpJsonKey =
  '-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\\n-----END PRIVATE KEY-----\\n';
const gcpKeyId = hex(40, 11);
const azureKey = `${alnum(86, 5)}==`;
const jwt =
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c';

export const SECRET_SAMPLES: SecretSample[] = [
  { kind: 'privateKeyBlock', text: `key file:\n${rsaKey}\n`, secret: rsaKey },
  { kind: 'privateKeyBlock', text: `id_ed25519:\n${opensshKey}`, secret: opensshKey },
  {
    kind: 'privateKeyBlock',
    text: `{"type": "service_account", "private_key": "${gcpJsonKey}"}`,
    secret: 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj',
  },
  {
    kind: 'gcpServiceAccountKeyId',
    text: `{"private_key_id": "${gcpKeyId}", "client_email": "ci@proj.iam.gserviceaccount.com"}`,
    secret: gcpKeyId,
  },
  { kind: 'awsAccessKeyId', text: 'export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE', secret: 'AKIAIOSFODNN7EXAMPLE' },
  {
    kind: 'awsSecretAccessKey',
    text: 'aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    secret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  },
  { kind: 'gcpApiKey', text: `const mapsKey = "AIza${alnum(35, 21)}";`, secret: `AIza${alnum(35, 21)}` },
  { kind: 'googleOAuthClientSecret', text: `GOOGLE_CLIENT_SECRET: GOCSPX-${alnum(28, 23)}`, secret: `GOCSPX-${alnum(28, 23)}` },
  { kind: 'googleOAuthAccessToken', text: `curl -H "X-Goog-Token: ya29.a0Af${alnum(60, 29)}"`, secret: `ya29.a0Af${alnum(60, 29)}` },
  {
    kind: 'azureStorageKey',
    text: `DefaultEndpointsProtocol=https;AccountName=lanesci;AccountKey=${azureKey};EndpointSuffix=core.windows.net`,
    secret: azureKey,
  },
  { kind: 'githubToken', text: `remote: using token ghp_${alnum(36, 31)}`, secret: `ghp_${alnum(36, 31)}` },
  { kind: 'githubToken', text: `GH_TOKEN=gho_${alnum(36, 37)}`, secret: `gho_${alnum(36, 37)}` },
  { kind: 'githubToken', text: `user-to-server ghu_${alnum(36, 41)}`, secret: `ghu_${alnum(36, 41)}` },
  { kind: 'githubToken', text: `installation token: ghs_${alnum(36, 43)}`, secret: `ghs_${alnum(36, 43)}` },
  { kind: 'githubToken', text: `refresh ghr_${alnum(76, 47)}`, secret: `ghr_${alnum(76, 47)}` },
  {
    kind: 'githubFineGrainedToken',
    text: `github_pat_11ABCDEFG0${alnum(12, 53)}_${alnum(59, 59)}`,
    secret: `github_pat_11ABCDEFG0${alnum(12, 53)}_${alnum(59, 59)}`,
  },
  { kind: 'gitlabToken', text: `CI_JOB: PRIVATE-TOKEN glpat-${alnum(20, 61)}`, secret: `glpat-${alnum(20, 61)}` },
  {
    kind: 'slackToken',
    text: `SLACK_BOT=xoxb-123456789012-1234567890123-${alnum(24, 67)}`,
    secret: `xoxb-123456789012-1234567890123-${alnum(24, 67)}`,
  },
  {
    kind: 'slackToken',
    text: `user token xoxp-123456789012-123456789012-123456789012-${hex(32, 71)}`,
    secret: `xoxp-123456789012-123456789012-123456789012-${hex(32, 71)}`,
  },
  {
    kind: 'slackWebhook',
    text: `posting to https://hooks.slack.com/services/T0123ABCD/B0456EFGH/${alnum(24, 73)} ok`,
    secret: `https://hooks.slack.com/services/T0123ABCD/B0456EFGH/${alnum(24, 73)}`,
  },
  { kind: 'npmToken', text: `//registry.npmjs.org/:_authToken=npm_${alnum(36, 79)}`, secret: `npm_${alnum(36, 79)}` },
  { kind: 'pypiToken', text: `password = pypi-AgEIcHlwaS5vcmcCJD${alnum(70, 83)}`, secret: `pypi-AgEIcHlwaS5vcmcCJD${alnum(70, 83)}` },
  { kind: 'dockerHubToken', text: `docker login -u ci -p dckr_pat_${alnum(27, 89)}`, secret: `dckr_pat_${alnum(27, 89)}` },
  { kind: 'stripeKey', text: `Stripe.apiKey = "sk_live_${alnum(24, 97)}"`, secret: `sk_live_${alnum(24, 97)}` },
  { kind: 'stripeKey', text: `restricted: rk_live_${alnum(24, 101)}`, secret: `rk_live_${alnum(24, 101)}` },
  { kind: 'anthropicKey', text: `ANTHROPIC_API_KEY=sk-ant-api03-${alnum(93, 103)}AA`, secret: `sk-ant-api03-${alnum(93, 103)}AA` },
  {
    kind: 'openaiKey',
    text: `openai.api_key = "sk-proj-${alnum(48, 107)}T3BlbkFJ${alnum(20, 109)}"`,
    secret: `sk-proj-${alnum(48, 107)}T3BlbkFJ${alnum(20, 109)}`,
  },
  { kind: 'openaiKey', text: `key sk-${alnum(20, 113)}T3BlbkFJ${alnum(20, 127)}`, secret: `sk-${alnum(20, 113)}T3BlbkFJ${alnum(20, 127)}` },
  { kind: 'huggingFaceToken', text: `HF token: hf_${alnum(34, 131)}`, secret: `hf_${alnum(34, 131)}` },
  { kind: 'sendgridKey', text: `SENDGRID=SG.${alnum(22, 137)}.${alnum(43, 139)}`, secret: `SG.${alnum(22, 137)}.${alnum(43, 139)}` },
  { kind: 'twilioApiKey', text: `twilio key SK${hex(32, 149)}`, secret: `SK${hex(32, 149)}` },
  { kind: 'twilioAuthToken', text: `TWILIO_AUTH_TOKEN="${hex(32, 151)}"`, secret: hex(32, 151) },
  {
    kind: 'herokuApiKey',
    text: `HEROKU_API_KEY=${hex(8, 157)}-${hex(4, 163)}-${hex(4, 167)}-${hex(4, 173)}-${hex(12, 179)}`,
    secret: `${hex(8, 157)}-${hex(4, 163)}-${hex(4, 167)}-${hex(4, 173)}-${hex(12, 179)}`,
  },
  { kind: 'herokuApiKey', text: `heroku auth: HRKU-${alnum(60, 181)}`, secret: `HRKU-${alnum(60, 181)}` },
  { kind: 'shopifyToken', text: `X-Shopify-Access: shpat_${hex(32, 191)}`, secret: `shpat_${hex(32, 191)}` },
  { kind: 'jwt', text: `session cookie id=${jwt}; Path=/`, secret: jwt },
  { kind: 'authorizationHeader', text: `> Authorization: Bearer ${alnum(40, 193)}`, secret: alnum(40, 193) },
  {
    kind: 'authorizationHeader',
    text: `"authorization": "Basic dXNlcjpjb3JyZWN0LWhvcnNlLWJhdHRlcnk="`,
    secret: 'dXNlcjpjb3JyZWN0LWhvcnNlLWJhdHRlcnk=',
  },
  { kind: 'bearerToken', text: `curl -H 'X-Auth: Bearer ${alnum(32, 197)}' https://api.example.com`, secret: alnum(32, 197) },
  { kind: 'urlCredentials', text: 'cloning https://deploy:Tr0ub4dor&3x@git.example.com/team/repo.git', secret: 'Tr0ub4dor&3x' },
  { kind: 'urlCredentials', text: 'DATABASE_URL=postgres://app:pa55w0rd-Q9@db.internal:5432/app', secret: 'pa55w0rd-Q9' },
  { kind: 'secretAssignment', text: 'password=hunter2', secret: 'hunter2' },
  { kind: 'secretAssignment', text: 'DB_PASSWORD: "correct horse battery staple"', secret: 'correct horse battery staple' },
  { kind: 'secretAssignment', text: 'passwd: Pl4inText!', secret: 'Pl4inText!' },
  { kind: 'secretAssignment', text: 'client_secret=8Qs~vKe3nR', secret: '8Qs~vKe3nR' },
  { kind: 'secretAssignment', text: 'api_key=abc123secretvalue', secret: 'abc123secretvalue' },
  { kind: 'secretAssignment', text: "token: 'tkn-live-7788'", secret: 'tkn-live-7788' },
  { kind: 'highEntropySecret', text: `SIGNING_KEY=9fK2mQ7xR4tLp8Zw3bN6vY1c`, secret: '9fK2mQ7xR4tLp8Zw3bN6vY1c' },
  { kind: 'highEntropySecret', text: `session_cookie: "s%3A${alnum(32, 199)}"`, secret: alnum(32, 199) },
];
