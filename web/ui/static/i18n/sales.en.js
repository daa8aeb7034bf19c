// English strings of the sales page (keys shared with sales.pt-BR.js); merged into en.js.
export default {
};
