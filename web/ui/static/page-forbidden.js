// The "not your page" page needs only translation.
import { setup } from './i18n.js';

setup();
