// The campaign editor's translations between business words and the campaign
// JSON the API keeps: days and hours to and from the schedule's cron
// expressions, a number and a unit to and from Go duration text. No DOM here.

const dayKeys = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat']; // cron's numbering, Sunday 0
const dayNames = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };

// dowField writes cron's day-of-week field, runs of days as ranges: 1-5, 0,6.
function dowField(days) {
  const nums = [...new Set(days.map((d) => dayNames[d]))].sort((a, b) => a - b);
  if (nums.length === 7) return '*';
  const parts = [];
  for (let i = 0; i < nums.length;) {
    let j = i;
    while (j + 1 < nums.length && nums[j + 1] === nums[j] + 1) j++;
    parts.push(j - i >= 2 ? `${nums[i]}-${nums[j]}` : nums.slice(i, j + 1).join(','));
    i = j + 1;
  }
  return parts.join(',');
}

/** cronFromDays writes the schedule that opens on days at open and closes at close ("HH:MM"). */
export function cronFromDays(days, open, close) {
  const at = (hhmm) => {
    const [h, m] = hhmm.split(':').map(Number);
    return `${m} ${h} * * ${dowField(days)}`;
  };
  return { open: at(open), close: at(close) };
}

// parseDow reads a day-of-week field (numbers 0–7, names, ranges, lists, *), or null.
function parseDow(field) {
  if (field === '*') return dayKeys.slice();
  const num = (s) => {
    const k = s.toLowerCase();
    if (k in dayNames) return dayNames[k];
    if (!/^[0-7]$/.test(s)) return null;
    return Number(s) % 7;
  };
  const out = new Set();
  for (const part of field.split(',')) {
    const [a, b] = part.split('-');
    const from = num(a), to = b === undefined ? from : num(b);
    if (from === null || to === null) return null;
    // A range ending on 7 (Sunday) is "to the end of the week".
    const end = b !== undefined && b === '7' ? 7 : to;
    if (end < from) return null;
    for (let d = from; d <= end; d++) out.add(dayKeys[d % 7]);
  }
  return [...out];
}

/**
 * daysFromCron reads a schedule the days and hours can show: both expressions
 * "M H * * DOW" with the same days, closing after opening. Anything else
 * (another month or day of the month, @every, a closing the next day) is null.
 */
export function daysFromCron(open, close) {
  const re = /^(\d{1,2}) (\d{1,2}) \* \* (\S+)$/;
  const o = re.exec((open || '').trim()), c = re.exec((close || '').trim());
  if (!o || !c || o[3] !== c[3]) return null;
  const days = parseDow(o[3]);
  const hhmm = (m) => {
    const h = Number(m[2]), min = Number(m[1]);
    if (h > 23 || min > 59) return null;
    return `${String(h).padStart(2, '0')}:${String(min).padStart(2, '0')}`;
  };
  const from = hhmm(o), to = hhmm(c);
  if (!days || days.length === 0 || !from || !to || to <= from) return null;
  const order = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
  return { days: order.filter((d) => days.includes(d)), open: from, close: to };
}

const unitSeconds = { minutes: 60, hours: 3600, days: 86400 };

/** durationSeconds reads Go duration text ("1h30m0s", "0s") as seconds. */
export function durationSeconds(text) {
  const scale = { h: 3600, m: 60, s: 1, ms: 1e-3, us: 1e-6, 'µs': 1e-6, ns: 1e-9 };
  let total = 0;
  for (const m of String(text).matchAll(/(\d+(?:\.\d+)?)(h|ms|us|µs|ns|m|s)/g)) total += Number(m[1]) * scale[m[2]];
  return total;
}

/** splitDelay shows seconds as a number and the largest unit that keeps it whole. */
export function splitDelay(seconds) {
  if (seconds > 0 && seconds % unitSeconds.days === 0) return [seconds / unitSeconds.days, 'days'];
  if (seconds > 0 && seconds % unitSeconds.hours === 0) return [seconds / unitSeconds.hours, 'hours'];
  return [Math.round((seconds / 60) * 1000) / 1000, 'minutes'];
}

/** delayText writes a number of units as the API's duration text, in whole seconds. */
export function delayText(n, unit) {
  return `${Math.round(n * unitSeconds[unit])}s`;
}
