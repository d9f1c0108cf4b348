import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
const s = new Session(); s.connect();
s.post('Profiler.enable'); s.post('Profiler.setSamplingInterval', { interval: 50 });
let on = false;
process.on('SIGUSR2', () => {
  if (!on) { on = true; s.post('Profiler.start'); return; }
  s.post('Profiler.stop', (err, { profile }) => { writeFileSync(process.env.PROFOUT, JSON.stringify(profile)); on = false; });
});
