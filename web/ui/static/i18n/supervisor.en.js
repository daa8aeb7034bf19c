// English strings of the supervisor page (keys shared with supervisor.pt-BR.js); merged into en.js.
export default {
};
