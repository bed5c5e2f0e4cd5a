/** `ferry help status` names every option `ferry status` takes for a gateway: a token-protected admin endpoint needs --token-file. */
import t from 'tap';
import { command } from '../../cli/cmd-status.js';

t.test('cli - help status names --token-file (a gateway whose admin endpoint is not on loopback needs it)', async (t) => {
  t.match(command.help, /--token-file FILE/, 'the usage and the options name --token-file');
  t.match(command.help, /\n  --token-file FILE /, 'it is explained in the option list');
});
