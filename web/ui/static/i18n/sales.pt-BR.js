// Textos da página sales em português do Brasil (mesmas chaves de sales.en.js); entram em pt-BR.js.
export default {
};
