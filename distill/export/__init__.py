"""Ship what a run made: a Hugging Face dataset folder with its card, a merged model, GGUF files for llama.cpp
and Ollama, each checked and evaluated on the way (`distill export`, `distill export-model`)."""
