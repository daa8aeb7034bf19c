// The sign-in page needs only translation: the form posts without script.
import { setup } from './i18n.js';

setup();
