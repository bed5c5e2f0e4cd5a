import t from 'tap';
import { fillTemplate } from '../../gateway/handlers/template.js';
import { renderTopic } from '../../gateway/handlers/mqtt.js';
import { renderUrl } from '../../gateway/handlers/http-outcome.js';

t.test('template - values are inserted as they are: no $ replacement patterns, no second filling', async (t) => {
  for (const target of ['$&', "$'", '$`', '$$', '$1', 'a$&b', '{agent}', '{target}', 'x/{agent}/$&']) {
    t.equal(fillTemplate('ferry/{agent}/{target}', 'pi-1', target), `ferry/pi-1/${target}`, `target ${JSON.stringify(target)}`);
  }
  t.equal(fillTemplate('{target}-{agent}-{target}', 'a', 'b'), 'b-a-b', 'every placeholder, in any order');
  t.equal(fillTemplate('{Agent}/{targets}', 'a', 'b'), '{Agent}/{targets}', 'nothing else is touched');
  t.equal(renderTopic('ferry/{agent}/{target}', 'pi-1', '$&\u2028'), 'ferry/pi-1/$&\u2028', 'the mqtt topic (the id fuzzer\'s seed 991851720)');
  t.equal(renderUrl('http://h/{agent}/{target}', 'pi-1', '$&'), 'http://h/pi-1/%24%26', 'the webhook URL');
});
