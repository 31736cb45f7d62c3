<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="pt_BR" sourcelanguage="en">
<context>
    <name>VideoTile</name>
    <message>
        <source>Steer the camera: drag, wheel, arrow keys, right-click</source>
        <translation>Mova a câmera: arraste, roda do mouse, setas, botão direito</translation>
    </message>
    <message>
        <source>No signal</source>
        <translation>Sem sinal</translation>
    </message>
    <message>
        <source>Reconnecting…</source>
        <translation>Reconectando…</translation>
    </message>
    <message>
        <source>Key frames only</source>
        <translation>Somente quadros-chave</translation>
    </message>
    <message>
        <source>Reset zoom (0)</source>
        <translation>Restaurar zoom (0)</translation>
    </message>
</context>
<context>
    <name>Timeline</name>
    <message>
        <source>No recordings</source>
        <translation>Sem gravações</translation>
    </message>
</context>
<context>
    <name>MainWindow</name>
    <message>
        <source>Alarms</source>
        <translation>Alarmes</translation>
    </message>
    <message>
        <source>Live</source>
        <translation>Ao vivo</translation>
    </message>
    <message>
        <source>Play</source>
        <translation>Reproduzir</translation>
    </message>
    <message>
        <source>Pause</source>
        <translation>Pausar</translation>
    </message>
    <message>
        <source>Reverse</source>
        <translation>Reverso</translation>
    </message>
    <message>
        <source>Step forward</source>
        <translation>Avançar quadro</translation>
    </message>
    <message>
        <source>Step back</source>
        <translation>Voltar quadro</translation>
    </message>
    <message>
        <source>Export…</source>
        <translation>Exportar…</translation>
    </message>
    <message>
        <source>Layout</source>
        <translation>Layout</translation>
    </message>
    <message>
        <source>Cameras</source>
        <translation>Câmeras</translation>
    </message>
    <message>
        <source>Recorders</source>
        <translation>Gravadores</translation>
    </message>
    <message>
        <source>Events</source>
        <translation>Eventos</translation>
    </message>
    <message>
        <source>Settings</source>
        <translation>Configurações</translation>
    </message>
    <message>
        <source>&amp;About Vigia</source>
        <translation>&amp;Sobre o Vigia</translation>
    </message>
    <message>
        <source>&amp;Cameras…</source>
        <translation>&amp;Câmeras…</translation>
    </message>
    <message>
        <source>&amp;Connect to recorder…</source>
        <translation>&amp;Conectar a um gravador…</translation>
    </message>
    <message>
        <source>&amp;Delete saved layout…</source>
        <translation>&amp;Excluir layout salvo…</translation>
    </message>
    <message>
        <source>&amp;Detach layout to a new window</source>
        <translation>&amp;Destacar o layout em uma nova janela</translation>
    </message>
    <message>
        <source>&amp;Export…</source>
        <translation>&amp;Exportar…</translation>
    </message>
    <message>
        <source>&amp;File</source>
        <translation>&amp;Arquivo</translation>
    </message>
    <message>
        <source>&amp;Full screen</source>
        <translation>&amp;Tela cheia</translation>
    </message>
    <message>
        <source>&amp;Help</source>
        <translation>A&amp;juda</translation>
    </message>
    <message>
        <source>&amp;Keyboard shortcuts</source>
        <translation>&amp;Atalhos de teclado</translation>
    </message>
    <message>
        <source>&amp;Layout</source>
        <translation>&amp;Layout</translation>
    </message>
    <message>
        <source>&amp;Preferences…</source>
        <translation>&amp;Preferências…</translation>
    </message>
    <message>
        <source>&amp;Quit</source>
        <translation>&amp;Sair</translation>
    </message>
    <message>
        <source>&amp;Recorders…</source>
        <translation>&amp;Gravadores…</translation>
    </message>
    <message>
        <source>&amp;Save layout…</source>
        <translation>&amp;Salvar layout…</translation>
    </message>
    <message>
        <source>&amp;Settings</source>
        <translation>&amp;Configurações</translation>
    </message>
    <message>
        <source>&amp;Settings…</source>
        <translation>&amp;Configurações…</translation>
    </message>
    <message>
        <source>&amp;View</source>
        <translation>&amp;Exibir</translation>
    </message>
    <message>
        <source>(none saved)</source>
        <translation>(nenhum salvo)</translation>
    </message>
    <message>
        <source>(on the recorder)</source>
        <translation>(no gravador)</translation>
    </message>
    <message>
        <source>(shared by {owner})</source>
        <translation>(compartilhado por {owner})</translation>
    </message>
    <message>
        <source>About Vigia</source>
        <translation>Sobre o Vigia</translation>
    </message>
    <message>
        <source>Connect to recorder</source>
        <translation>Conectar a um gravador</translation>
    </message>
    <message>
        <source>Connected to {name}</source>
        <translation>Conectado a {name}</translation>
    </message>
    <message>
        <source>Connecting to {server}…</source>
        <translation>Conectando a {server}…</translation>
    </message>
    <message>
        <source>Could not connect to {server}: {error}</source>
        <translation>Não foi possível conectar a {server}: {error}</translation>
    </message>
    <message>
        <source>Delete layout</source>
        <translation>Excluir layout</translation>
    </message>
    <message>
        <source>Enter	Maximise the selected tile (Esc: back)</source>
        <translation>Enter	Maximizar o quadro selecionado (Esc: voltar)</translation>
    </message>
    <message>
        <source>Export</source>
        <translation>Exportação</translation>
    </message>
    <message>
        <source>Full screen</source>
        <translation>Tela cheia</translation>
    </message>
    <message>
        <source>Keyboard shortcuts</source>
        <translation>Atalhos de teclado</translation>
    </message>
    <message>
        <source>Layout {name} saved</source>
        <translation>Layout {name} salvo</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>Nome</translation>
    </message>
    <message>
        <source>No layout named {name}</source>
        <translation>Nenhum layout chamado {name}</translation>
    </message>
    <message>
        <source>Password</source>
        <translation>Senha</translation>
    </message>
    <message>
        <source>Password for {user} at {server}</source>
        <translation>Senha de {user} em {server}</translation>
    </message>
    <message>
        <source>Playback</source>
        <translation>Reprodução</translation>
    </message>
    <message>
        <source>Playback controls are not installed</source>
        <translation>Os controles de reprodução não estão instalados</translation>
    </message>
    <message>
        <source>Recorder</source>
        <translation>Gravador</translation>
    </message>
    <message>
        <source>Remember this recorder</source>
        <translation>Lembrar este gravador</translation>
    </message>
    <message>
        <source>Save at least two layouts to tour through them.</source>
        <translation>Salve pelo menos dois layouts para percorrê-los em ronda.</translation>
    </message>
    <message>
        <source>Save layout</source>
        <translation>Salvar layout</translation>
    </message>
    <message>
        <source>Saved &amp;layouts</source>
        <translation>&amp;Layouts salvos</translation>
    </message>
    <message>
        <source>Seconds per layout</source>
        <translation>Segundos por layout</translation>
    </message>
    <message>
        <source>Shared with all users (kept by the recorder)</source>
        <translation>Compartilhado com todos os usuários (guardado no gravador)</translation>
    </message>
    <message>
        <source>Single tile</source>
        <translation>Quadro único</translation>
    </message>
    <message>
        <source>Start &amp;tour…</source>
        <translation>Iniciar &amp;ronda…</translation>
    </message>
    <message>
        <source>Stop tour</source>
        <translation>Parar ronda</translation>
    </message>
    <message>
        <source>The events panel is not installed</source>
        <translation>O painel de eventos não está instalado</translation>
    </message>
    <message>
        <source>Tour</source>
        <translation>Ronda</translation>
    </message>
    <message>
        <source>User</source>
        <translation>Usuário</translation>
    </message>
    <message>
        <source>Vigia</source>
        <translation>Vigia</translation>
    </message>
    <message>
        <source>Vigia workstation: live video, playback and search for Vigia recorders.</source>
        <translation>Estação de trabalho Vigia: vídeo ao vivo, reprodução e busca para gravadores Vigia.</translation>
    </message>
    <message>
        <source>Vigia — detached wall</source>
        <translation>Vigia — mural destacado</translation>
    </message>
    <message>
        <source>Wheel / drag	Digital zoom and pan on a tile (0: reset)</source>
        <translation>Roda / arrastar	Zoom digital e deslocamento no quadro (0: restaurar)</translation>
    </message>
    <message>
        <source>{what} is not installed</source>
        <translation>{what} não está instalado</translation>
    </message>
    <message>
        <source>&amp;Motion search on this tile</source>
        <translation>Busca de &amp;movimento neste bloco</translation>
    </message>
    <message>
        <source>Choose a tile with a camera first</source>
        <translation>Escolha primeiro um bloco com câmera</translation>
    </message>
    <message>
        <source>Motion search</source>
        <translation>Busca de movimento</translation>
    </message>
    <message>
        <source>Ctrl++ / Ctrl+- / Ctrl+Left / Ctrl+Right	Zoom and pan the timeline</source>
        <translation>Ctrl++ / Ctrl+- / Ctrl+Esquerda / Ctrl+Direita	Ampliar e deslocar a linha do tempo</translation>
    </message>
    <message>
        <source>Loading…</source>
        <translation>Carregando…</translation>
    </message>
</context>
<context>
    <name>ResourceTree</name>
    <message>
        <source>Filter cameras (Ctrl+F)</source>
        <translation>Filtrar câmeras (Ctrl+F)</translation>
    </message>
    <message>
        <source>connecting</source>
        <translation>conectando</translation>
    </message>
    <message>
        <source>disabled</source>
        <translation>desativada</translation>
    </message>
    <message>
        <source>error</source>
        <translation>erro</translation>
    </message>
    <message>
        <source>offline</source>
        <translation>offline</translation>
    </message>
    <message>
        <source>online</source>
        <translation>online</translation>
    </message>
    <message>
        <source>reconnecting</source>
        <translation>reconectando</translation>
    </message>
    <message>
        <source>stopped</source>
        <translation>parada</translation>
    </message>
    <message>
        <source>unknown</source>
        <translation>desconhecido</translation>
    </message>
    <message>
        <source>Site {site}: {count} recorders</source>
        <translation>Site {site}: {count} gravadores</translation>
    </message>
    <message>
        <source>{site} ({down} of {count} not online)</source>
        <translation>{site} ({down} de {count} fora do ar)</translation>
    </message>
</context>
<context>
    <name>StatusBar</name>
    <message>
        <source>HW</source>
        <translation>HW</translation>
    </message>
    <message>
        <source>Not connected</source>
        <translation>Não conectado</translation>
    </message>
    <message>
        <source>SW</source>
        <translation>SW</translation>
    </message>
    <message>
        <source>connecting</source>
        <translation>conectando</translation>
    </message>
    <message>
        <source>key frames only</source>
        <translation>somente quadros-chave</translation>
    </message>
    <message>
        <source>login refused</source>
        <translation>login recusado</translation>
    </message>
    <message>
        <source>offline</source>
        <translation>offline</translation>
    </message>
    <message>
        <source>online</source>
        <translation>online</translation>
    </message>
    <message>
        <source>online, live unavailable</source>
        <translation>online, ao vivo indisponível</translation>
    </message>
    <message>
        <source>reconnecting</source>
        <translation>reconectando</translation>
    </message>
    <message>
        <source>waiting for the recorder</source>
        <translation>aguardando o gravador</translation>
    </message>
    <message>
        <source>{name}: {stream} · {decoder} · {fps:.1f} fps · {dropped} dropped</source>
        <translation>{name}: {stream} · {decoder} · {fps:.1f} qps · {dropped} descartados</translation>
    </message>
</context>
<context>
    <name>AnalyticsPage</name>
    <message>
        <source>Analysed frames per second</source>
        <translation>Quadros analisados por segundo</translation>
    </message>
    <message>
        <source>Apply</source>
        <translation>Aplicar</translation>
    </message>
    <message>
        <source>Camera</source>
        <translation>Câmera</translation>
    </message>
    <message>
        <source>Choose a camera of a logged-in recorder</source>
        <translation>Escolha uma câmera de um gravador conectado</translation>
    </message>
    <message>
        <source>Delete</source>
        <translation>Excluir</translation>
    </message>
    <message>
        <source>Detect objects on this camera</source>
        <translation>Detectar objetos nesta câmera</translation>
    </message>
    <message>
        <source>Detection</source>
        <translation>Detecção</translation>
    </message>
    <message>
        <source>Draw line</source>
        <translation>Desenhar linha</translation>
    </message>
    <message>
        <source>Draw zone</source>
        <translation>Desenhar zona</translation>
    </message>
    <message>
        <source>Labels</source>
        <translation>Rótulos</translation>
    </message>
    <message>
        <source>Minimum score</source>
        <translation>Pontuação mínima</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>Nome</translation>
    </message>
    <message>
        <source>Nothing changed</source>
        <translation>Nada mudou</translation>
    </message>
    <message>
        <source>Object labels</source>
        <translation>Rótulos de objetos</translation>
    </message>
    <message>
        <source>Reading {0}…</source>
        <translation>Lendo {0}…</translation>
    </message>
    <message>
        <source>Recorder</source>
        <translation>Gravador</translation>
    </message>
    <message>
        <source>Save zones</source>
        <translation>Salvar zonas</translation>
    </message>
    <message>
        <source>Saved</source>
        <translation>Salvo</translation>
    </message>
    <message>
        <source>Saved {0} zone(s) and line(s); deleted {1}</source>
        <translation>{0} zona(s) e linha(s) salva(s); {1} excluída(s)</translation>
    </message>
    <message>
        <source>Saving zones…</source>
        <translation>Salvando zonas…</translation>
    </message>
    <message>
        <source>Saving…</source>
        <translation>Salvando…</translation>
    </message>
    <message>
        <source>Status</source>
        <translation>Estado</translation>
    </message>
    <message>
        <source>Stream</source>
        <translation>Fluxo</translation>
    </message>
    <message>
        <source>Zone: click the corners, double-click to finish. Line: drag from start to end; the tick shows the side a left-to-right crossing ends on.</source>
        <translation>Zona: clique nos cantos e dê um duplo clique para terminar. Linha: arraste do início ao fim; a marca mostra o lado em que termina uma travessia da esquerda para a direita.</translation>
    </message>
    <message>
        <source>Zones and lines</source>
        <translation>Zonas e linhas</translation>
    </message>
    <message>
        <source>all labels</source>
        <translation>todos os rótulos</translation>
    </message>
    <message>
        <source>all labels (or e.g. person, car)</source>
        <translation>todos os rótulos (ou p. ex. person, car)</translation>
    </message>
</context>
<context>
    <name>CamerasPage</name>
    <message>
        <source>Add</source>
        <translation>Adicionar</translation>
    </message>
    <message>
        <source>Added {0}; it is recording</source>
        <translation>{0} adicionada; está gravando</translation>
    </message>
    <message>
        <source>Adding {0}…</source>
        <translation>Adicionando {0}…</translation>
    </message>
    <message>
        <source>Enabled</source>
        <translation>Ativada</translation>
    </message>
    <message>
        <source>ID</source>
        <translation>ID</translation>
    </message>
    <message>
        <source>ID: lower-case letters, digits, '-' and '_' (up to 64)</source>
        <translation>ID: letras minúsculas, dígitos, '-' e '_' (até 64)</translation>
    </message>
    <message>
        <source>Log in to a recorder first (Recorders page)</source>
        <translation>Entre em um gravador primeiro (página Gravadores)</translation>
    </message>
    <message>
        <source>Main</source>
        <translation>Principal</translation>
    </message>
    <message>
        <source>Main stream URL</source>
        <translation>URL do fluxo principal</translation>
    </message>
    <message>
        <source>Main stream URL: rtsp://, rtsps://, http(s):// or file://</source>
        <translation>URL do fluxo principal: rtsp://, rtsps://, http(s):// ou file://</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>Nome</translation>
    </message>
    <message>
        <source>New</source>
        <translation>Nova</translation>
    </message>
    <message>
        <source>No snapshot</source>
        <translation>Sem instantâneo</translation>
    </message>
    <message>
        <source>Reading cameras…</source>
        <translation>Lendo câmeras…</translation>
    </message>
    <message>
        <source>Recorder</source>
        <translation>Gravador</translation>
    </message>
    <message>
        <source>Refresh</source>
        <translation>Atualizar</translation>
    </message>
    <message>
        <source>Remove camera</source>
        <translation>Remover câmera</translation>
    </message>
    <message>
        <source>Remove camera {0}? The recorder stops recording it; its recordings stay until retention removes them.</source>
        <translation>Remover a câmera {0}? O gravador para de gravá-la; as gravações ficam até a retenção removê-las.</translation>
    </message>
    <message>
        <source>Removed {0}</source>
        <translation>{0} removida</translation>
    </message>
    <message>
        <source>Remove…</source>
        <translation>Remover…</translation>
    </message>
    <message>
        <source>Removing {0}…</source>
        <translation>Removendo {0}…</translation>
    </message>
    <message>
        <source>Save changes</source>
        <translation>Salvar alterações</translation>
    </message>
    <message>
        <source>Saved {0}</source>
        <translation>{0} salva</translation>
    </message>
    <message>
        <source>Saving {0}…</source>
        <translation>Salvando {0}…</translation>
    </message>
    <message>
        <source>Snapshot</source>
        <translation>Instantâneo</translation>
    </message>
    <message>
        <source>Sub</source>
        <translation>Sub</translation>
    </message>
    <message>
        <source>Sub stream URL</source>
        <translation>URL do subfluxo</translation>
    </message>
    <message>
        <source>Sub stream URL: rtsp://, rtsps://, http(s):// or file://</source>
        <translation>URL do subfluxo: rtsp://, rtsps://, http(s):// ou file://</translation>
    </message>
    <message>
        <source>Test</source>
        <translation>Testar</translation>
    </message>
    <message>
        <source>Test result</source>
        <translation>Resultado do teste</translation>
    </message>
    <message>
        <source>Testing…</source>
        <translation>Testando…</translation>
    </message>
    <message>
        <source>The recorder can open this camera</source>
        <translation>O gravador consegue abrir esta câmera</translation>
    </message>
    <message>
        <source>The recorder cannot open this camera</source>
        <translation>O gravador não consegue abrir esta câmera</translation>
    </message>
    <message>
        <source>The recorder hides this URL's password: type it again</source>
        <translation>O gravador oculta a senha desta URL: digite-a novamente</translation>
    </message>
    <message>
        <source>Type the main stream URL first</source>
        <translation>Digite primeiro a URL do fluxo principal</translation>
    </message>
    <message>
        <source>Waiting for video…</source>
        <translation>Aguardando vídeo…</translation>
    </message>
    <message>
        <source>failed</source>
        <translation>falhou</translation>
    </message>
</context>
<context>
    <name>PreferencesPage</name>
    <message>
        <source>'auto' uses a hardware decoder when the machine offers one, else software. Changes apply to tiles opened from now on.</source>
        <translation>'auto' usa um decodificador de hardware quando a máquina oferece um, senão software. As mudanças valem para blocos abertos daqui em diante.</translation>
    </message>
    <message>
        <source>Apply</source>
        <translation>Aplicar</translation>
    </message>
    <message>
        <source>Language</source>
        <translation>Idioma</translation>
    </message>
    <message>
        <source>Main stream for tiles at least this wide</source>
        <translation>Fluxo principal para blocos com pelo menos esta largura</translation>
    </message>
    <message>
        <source>Saved</source>
        <translation>Salvo</translation>
    </message>
    <message>
        <source>Video decoder</source>
        <translation>Decodificador de vídeo</translation>
    </message>
    <message>
        <source>auto (hardware when available)</source>
        <translation>auto (hardware quando disponível)</translation>
    </message>
    <message>
        <source>software</source>
        <translation>software</translation>
    </message>
</context>
<context>
    <name>RecordersPage</name>
    <message>
        <source>A user name is needed</source>
        <translation>É preciso um nome de usuário</translation>
    </message>
    <message>
        <source>Add and log in</source>
        <translation>Adicionar e entrar</translation>
    </message>
    <message>
        <source>Address</source>
        <translation>Endereço</translation>
    </message>
    <message>
        <source>Log in</source>
        <translation>Entrar</translation>
    </message>
    <message>
        <source>Log out</source>
        <translation>Sair</translation>
    </message>
    <message>
        <source>Logged in to {0} as {1} ({2})</source>
        <translation>Conectado a {0} como {1} ({2})</translation>
    </message>
    <message>
        <source>Logged out</source>
        <translation>Desconectado</translation>
    </message>
    <message>
        <source>Logging in to {0}…</source>
        <translation>Entrando em {0}…</translation>
    </message>
    <message>
        <source>Logging out…</source>
        <translation>Saindo…</translation>
    </message>
    <message>
        <source>Password</source>
        <translation>Senha</translation>
    </message>
    <message>
        <source>Remember (password in the system keyring)</source>
        <translation>Lembrar (senha no chaveiro do sistema)</translation>
    </message>
    <message>
        <source>Remove</source>
        <translation>Remover</translation>
    </message>
    <message>
        <source>Removed</source>
        <translation>Removido</translation>
    </message>
    <message>
        <source>Removing…</source>
        <translation>Removendo…</translation>
    </message>
    <message>
        <source>Type the password (none is saved for this recorder)</source>
        <translation>Digite a senha (nenhuma salva para este gravador)</translation>
    </message>
    <message>
        <source>User</source>
        <translation>Usuário</translation>
    </message>
    <message>
        <source>not connected</source>
        <translation>não conectado</translation>
    </message>
</context>
<context>
    <name>RecordingPage</name>
    <message>
        <source>Apply</source>
        <translation>Aplicar</translation>
    </message>
    <message>
        <source>Keep (days) 0: no age limit (the storage limits still apply). Disabled cameras are not recorded.</source>
        <translation>Manter (dias) 0: sem limite de idade (os limites de armazenamento continuam valendo). Câmeras desativadas não são gravadas.</translation>
    </message>
    <message>
        <source>Log in to a recorder first (Recorders page)</source>
        <translation>Entre em um gravador primeiro (página Gravadores)</translation>
    </message>
    <message>
        <source>Nothing changed</source>
        <translation>Nada mudou</translation>
    </message>
    <message>
        <source>Reading cameras…</source>
        <translation>Lendo câmeras…</translation>
    </message>
    <message>
        <source>Recorder</source>
        <translation>Gravador</translation>
    </message>
    <message>
        <source>Refresh</source>
        <translation>Atualizar</translation>
    </message>
    <message>
        <source>Saved {0} camera(s)</source>
        <translation>{0} câmera(s) salva(s)</translation>
    </message>
    <message>
        <source>Saving…</source>
        <translation>Salvando…</translation>
    </message>
    <message>
        <source>no limit</source>
        <translation>sem limite</translation>
    </message>
</context>
<context>
    <name>UsersPage</name>
    <message>
        <source>A new user needs a name and a password</source>
        <translation>Um novo usuário precisa de nome e senha</translation>
    </message>
    <message>
        <source>Add user</source>
        <translation>Adicionar usuário</translation>
    </message>
    <message>
        <source>Added {0}</source>
        <translation>{0} adicionado</translation>
    </message>
    <message>
        <source>Adding {0}…</source>
        <translation>Adicionando {0}…</translation>
    </message>
    <message>
        <source>All cameras</source>
        <translation>Todas as câmeras</translation>
    </message>
    <message>
        <source>Cameras</source>
        <translation>Câmeras</translation>
    </message>
    <message>
        <source>Disabled (cannot log in)</source>
        <translation>Desativado (não pode entrar)</translation>
    </message>
    <message>
        <source>Log in to a recorder first (Recorders page)</source>
        <translation>Entre em um gravador primeiro (página Gravadores)</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>Nome</translation>
    </message>
    <message>
        <source>New</source>
        <translation>Novo</translation>
    </message>
    <message>
        <source>Nothing changed</source>
        <translation>Nada mudou</translation>
    </message>
    <message>
        <source>Password</source>
        <translation>Senha</translation>
    </message>
    <message>
        <source>Reading users…</source>
        <translation>Lendo usuários…</translation>
    </message>
    <message>
        <source>Recorder</source>
        <translation>Gravador</translation>
    </message>
    <message>
        <source>Refresh</source>
        <translation>Atualizar</translation>
    </message>
    <message>
        <source>Role</source>
        <translation>Papel</translation>
    </message>
    <message>
        <source>Save changes</source>
        <translation>Salvar alterações</translation>
    </message>
    <message>
        <source>Saved {0}</source>
        <translation>{0} salvo</translation>
    </message>
    <message>
        <source>Saving {0}…</source>
        <translation>Salvando {0}…</translation>
    </message>
    <message>
        <source>all</source>
        <translation>todas</translation>
    </message>
    <message>
        <source>unchanged</source>
        <translation>inalterada</translation>
    </message>
    <message>
        <source>yes</source>
        <translation>sim</translation>
    </message>
</context>
<context>
    <name>ZoneEditor</name>
    <message>
        <source>No snapshot</source>
        <translation>Sem instantâneo</translation>
    </message>
</context>
<context>
    <name>ExportDialog</name>
    <message>
        <source>Browse…</source>
        <translation>Procurar…</translation>
    </message>
    <message>
        <source>Cameras</source>
        <translation>Câmeras</translation>
    </message>
    <message>
        <source>Cancel export</source>
        <translation>Cancelar exportação</translation>
    </message>
    <message>
        <source>Cannot use {0}: {1}</source>
        <translation>Não é possível usar {0}: {1}</translation>
    </message>
    <message>
        <source>Checking the signature…</source>
        <translation>Verificando a assinatura…</translation>
    </message>
    <message>
        <source>Choose a folder to save in</source>
        <translation>Escolha uma pasta para salvar</translation>
    </message>
    <message>
        <source>Choose at least one camera</source>
        <translation>Escolha ao menos uma câmera</translation>
    </message>
    <message>
        <source>Close</source>
        <translation>Fechar</translation>
    </message>
    <message>
        <source>Downloading…</source>
        <translation>Baixando…</translation>
    </message>
    <message>
        <source>Exact start (re-encode the first second)</source>
        <translation>Início exato (recodifica o primeiro segundo)</translation>
    </message>
    <message>
        <source>Export</source>
        <translation>Exportar</translation>
    </message>
    <message>
        <source>Export cancelled</source>
        <translation>Exportação cancelada</translation>
    </message>
    <message>
        <source>Exporting…</source>
        <translation>Exportando…</translation>
    </message>
    <message>
        <source>Format</source>
        <translation>Formato</translation>
    </message>
    <message>
        <source>From</source>
        <translation>De</translation>
    </message>
    <message>
        <source>Log in to a recorder first</source>
        <translation>Entre em um gravador primeiro</translation>
    </message>
    <message>
        <source>NOT verified:</source>
        <translation>NÃO verificado:</translation>
    </message>
    <message>
        <source>Progress</source>
        <translation>Progresso</translation>
    </message>
    <message>
        <source>Recorder</source>
        <translation>Gravador</translation>
    </message>
    <message>
        <source>Save exports in</source>
        <translation>Salvar exportações em</translation>
    </message>
    <message>
        <source>Save in</source>
        <translation>Salvar em</translation>
    </message>
    <message>
        <source>Saved in {0}</source>
        <translation>Salvo em {0}</translation>
    </message>
    <message>
        <source>Saved in {0}, but the check failed</source>
        <translation>Salvo em {0}, mas a verificação falhou</translation>
    </message>
    <message>
        <source>Stream</source>
        <translation>Fluxo</translation>
    </message>
    <message>
        <source>The end must be after the start</source>
        <translation>O fim deve ser depois do início</translation>
    </message>
    <message>
        <source>The recorder's export {0}: {1}</source>
        <translation>Exportação do gravador {0}: {1}</translation>
    </message>
    <message>
        <source>To</source>
        <translation>Até</translation>
    </message>
    <message>
        <source>Verified: signature valid (key {0}), every file intact.</source>
        <translation>Verificado: assinatura válida (chave {0}), todos os arquivos íntegros.</translation>
    </message>
</context>
<context>
    <name>SettingsDialog</name>
    <message>
        <source>Settings</source>
        <translation>Configurações</translation>
    </message>
</context>
<context>
    <name>Dialogs</name>
    <message>
        <source>No answer in time</source>
        <translation>Sem resposta a tempo</translation>
    </message>
</context>
<context>
    <name>EventsPanel</name>
    <message>
        <source>All cameras</source>
        <translation>Todas as câmeras</translation>
    </message>
    <message>
        <source>Any</source>
        <translation>Qualquer</translation>
    </message>
    <message>
        <source>Any zone</source>
        <translation>Qualquer zona</translation>
    </message>
    <message>
        <source>Camera</source>
        <translation>Câmera</translation>
    </message>
    <message>
        <source>Custom range</source>
        <translation>Intervalo personalizado</translation>
    </message>
    <message>
        <source>Event</source>
        <translation>Evento</translation>
    </message>
    <message>
        <source>Events: %1</source>
        <translation>Eventos: %1</translation>
    </message>
    <message>
        <source>Find objects</source>
        <translation>Buscar objetos</translation>
    </message>
    <message>
        <source>Kind</source>
        <translation>Tipo</translation>
    </message>
    <message>
        <source>Label</source>
        <translation>Rótulo</translation>
    </message>
    <message>
        <source>Last 15 minutes</source>
        <translation>Últimos 15 minutos</translation>
    </message>
    <message>
        <source>Last 24 hours</source>
        <translation>Últimas 24 horas</translation>
    </message>
    <message>
        <source>Last 7 days</source>
        <translation>Últimos 7 dias</translation>
    </message>
    <message>
        <source>Last hour</source>
        <translation>Última hora</translation>
    </message>
    <message>
        <source>Minimum score</source>
        <translation>Confiança mínima</translation>
    </message>
    <message>
        <source>No recorder connected</source>
        <translation>Nenhum gravador conectado</translation>
    </message>
    <message>
        <source>Object search</source>
        <translation>Busca de objetos</translation>
    </message>
    <message>
        <source>Objects of this label on the chosen camera and time</source>
        <translation>Objetos com este rótulo na câmera e no período escolhidos</translation>
    </message>
    <message>
        <source>Score</source>
        <translation>Confiança</translation>
    </message>
    <message>
        <source>Search</source>
        <translation>Buscar</translation>
    </message>
    <message>
        <source>Search again (F5)</source>
        <translation>Buscar novamente (F5)</translation>
    </message>
    <message>
        <source>Searching…</source>
        <translation>Buscando…</translation>
    </message>
    <message>
        <source>The end of the range must be after its start</source>
        <translation>O fim do intervalo deve ser depois do início</translation>
    </message>
    <message>
        <source>Time</source>
        <translation>Horário</translation>
    </message>
    <message>
        <source>Type the label of the objects to find</source>
        <translation>Digite o rótulo dos objetos a buscar</translation>
    </message>
    <message>
        <source>Zone</source>
        <translation>Zona</translation>
    </message>
    <message>
        <source>camera</source>
        <translation>câmera</translation>
    </message>
    <message>
        <source>enter</source>
        <translation>entrada</translation>
    </message>
    <message>
        <source>leave</source>
        <translation>saída</translation>
    </message>
    <message>
        <source>line</source>
        <translation>linha</translation>
    </message>
    <message>
        <source>loiter</source>
        <translation>permanência</translation>
    </message>
    <message>
        <source>motion</source>
        <translation>movimento</translation>
    </message>
    <message>
        <source>object</source>
        <translation>objeto</translation>
    </message>
    <message>
        <source>ongoing</source>
        <translation>em andamento</translation>
    </message>
</context>
<context>
    <name>MotionSearch</name>
    <message>
        <source>Camera</source>
        <translation>Câmera</translation>
    </message>
    <message>
        <source>Custom range</source>
        <translation>Intervalo personalizado</translation>
    </message>
    <message>
        <source>Drag a rectangle to search for motion in it (Esc cancels)</source>
        <translation>Arraste um retângulo para buscar movimento nele (Esc cancela)</translation>
    </message>
    <message>
        <source>Draw a rectangle on a tile</source>
        <translation>Desenhe um retângulo em um quadro de vídeo</translation>
    </message>
    <message>
        <source>Draw a rectangle on a tile first</source>
        <translation>Desenhe primeiro um retângulo em um quadro de vídeo</translation>
    </message>
    <message>
        <source>Last 15 minutes</source>
        <translation>Últimos 15 minutos</translation>
    </message>
    <message>
        <source>Last 24 hours</source>
        <translation>Últimas 24 horas</translation>
    </message>
    <message>
        <source>Last hour</source>
        <translation>Última hora</translation>
    </message>
    <message>
        <source>Motion found: %1</source>
        <translation>Movimento encontrado: %1</translation>
    </message>
    <message>
        <source>No motion in this area</source>
        <translation>Nenhum movimento nesta área</translation>
    </message>
    <message>
        <source>No recorder connected</source>
        <translation>Nenhum gravador conectado</translation>
    </message>
    <message>
        <source>Search motion</source>
        <translation>Buscar movimento</translation>
    </message>
    <message>
        <source>Search the drawn area again (Ctrl+Return)</source>
        <translation>Buscar novamente na área desenhada (Ctrl+Enter)</translation>
    </message>
    <message>
        <source>Searching…</source>
        <translation>Buscando…</translation>
    </message>
    <message>
        <source>The end of the range must be after its start</source>
        <translation>O fim do intervalo deve ser depois do início</translation>
    </message>
    <message>
        <source>Time</source>
        <translation>Horário</translation>
    </message>
    <message>
        <source>Unexpected answer from the recorder: %1</source>
        <translation>Resposta inesperada do gravador: %1</translation>
    </message>
</context>
<context>
    <name>PlaybackBar</name>
    <message>
        <source>Click to play from there; wheel zooms, drag pans</source>
        <translation>Clique para reproduzir a partir daí; a roda do mouse aplica zoom, arrastar desloca</translation>
    </message>
    <message>
        <source>Faster</source>
        <translation>Mais rápido</translation>
    </message>
    <message>
        <source>Go live</source>
        <translation>Ir para ao vivo</translation>
    </message>
    <message>
        <source>Live</source>
        <translation>Ao vivo</translation>
    </message>
    <message>
        <source>Next event or bookmark</source>
        <translation>Próximo evento ou marcador</translation>
    </message>
    <message>
        <source>Next frame</source>
        <translation>Próximo quadro</translation>
    </message>
    <message>
        <source>Play or pause</source>
        <translation>Reproduzir ou pausar</translation>
    </message>
    <message>
        <source>Playback speed (- / +)</source>
        <translation>Velocidade de reprodução (- / +)</translation>
    </message>
    <message>
        <source>Previous event or bookmark</source>
        <translation>Evento ou marcador anterior</translation>
    </message>
    <message>
        <source>Previous frame</source>
        <translation>Quadro anterior</translation>
    </message>
    <message>
        <source>Reverse</source>
        <translation>Reproduzir ao contrário</translation>
    </message>
    <message>
        <source>Slower</source>
        <translation>Mais lento</translation>
    </message>
    <message>
        <source>Sync</source>
        <translation>Sincronizar</translation>
    </message>
    <message>
        <source>Sync all tiles</source>
        <translation>Sincronizar todos os blocos</translation>
    </message>
</context>
<context>
    <name>TimeRange</name>
    <message>
        <source>Custom range</source>
        <translation>Intervalo personalizado</translation>
    </message>
    <message>
        <source>Last 15 minutes</source>
        <translation>Últimos 15 minutos</translation>
    </message>
    <message>
        <source>Last 24 hours</source>
        <translation>Últimas 24 horas</translation>
    </message>
    <message>
        <source>Last 7 days</source>
        <translation>Últimos 7 dias</translation>
    </message>
    <message>
        <source>Last hour</source>
        <translation>Última hora</translation>
    </message>
    <message>
        <source>Last {minutes} minutes</source>
        <translation>Últimos {minutes} minutos</translation>
    </message>
</context>
<context>
    <name>WelcomeScreen</name>
    <message>
        <source>Address</source>
        <translation>Endereço</translation>
    </message>
    <message>
        <source>Cannot reach {address}. Is the recorder running, and is the address right?</source>
        <translation>Não foi possível alcançar {address}. O gravador está em execução e o endereço está certo?</translation>
    </message>
    <message>
        <source>Log in</source>
        <translation>Entrar</translation>
    </message>
    <message>
        <source>Log in to a site or a recorder: pick one found on the network, or type its address.</source>
        <translation>Entre em um site ou gravador: escolha um encontrado na rede ou digite o endereço.</translation>
    </message>
    <message>
        <source>Logging in to {address}…</source>
        <translation>Entrando em {address}…</translation>
    </message>
    <message>
        <source>Name</source>
        <translation>Nome</translation>
    </message>
    <message>
        <source>None found yet: recorders on this network appear here by themselves. For one elsewhere, type its address.</source>
        <translation>Nenhum encontrado ainda: os gravadores desta rede aparecem aqui sozinhos. Para um em outro lugar, digite o endereço.</translation>
    </message>
    <message>
        <source>Password</source>
        <translation>Senha</translation>
    </message>
    <message>
        <source>Remember and log in by itself next time</source>
        <translation>Lembrar e entrar sozinho da próxima vez</translation>
    </message>
    <message>
        <source>Site {site} (1 recorder)</source>
        <translation>Site {site} (1 gravador)</translation>
    </message>
    <message>
        <source>Site {site} ({count} recorders)</source>
        <translation>Site {site} ({count} gravadores)</translation>
    </message>
    <message>
        <source>Sites and recorders on the network</source>
        <translation>Sites e gravadores na rede</translation>
    </message>
    <message>
        <source>State</source>
        <translation>Estado</translation>
    </message>
    <message>
        <source>Type the address of a recorder, or pick one in the list</source>
        <translation>Digite o endereço de um gravador ou escolha um na lista</translation>
    </message>
    <message>
        <source>Type your user name</source>
        <translation>Digite seu nome de usuário</translation>
    </message>
    <message>
        <source>User</source>
        <translation>Usuário</translation>
    </message>
    <message>
        <source>Version</source>
        <translation>Versão</translation>
    </message>
    <message>
        <source>Welcome to Vigia</source>
        <translation>Bem-vindo ao Vigia</translation>
    </message>
    <message>
        <source>Wrong user name or password ({detail})</source>
        <translation>Usuário ou senha incorretos ({detail})</translation>
    </message>
    <message>
        <source>on the network</source>
        <translation>na rede</translation>
    </message>
    <message>
        <source>saved</source>
        <translation>salvo</translation>
    </message>
    <message>
        <source>{address} is not a recorder address: {detail}</source>
        <translation>{address} não é um endereço de gravador: {detail}</translation>
    </message>
    <message>
        <source>{address} refused the login: {detail}</source>
        <translation>{address} recusou a entrada: {detail}</translation>
    </message>
</context>
<context>
    <name>AlarmConsole</name>
    <message>
        <source>Manual rule fired by Ctrl+T on the current tile</source>
        <translation>Regra manual disparada por Ctrl+T no quadro atual</translation>
    </message>
    <message>
        <source>Failed notifications</source>
        <translation>Notificações que falharam</translation>
    </message>
    <message>
        <source>Not read: %1</source>
        <translation>Não lido: %1</translation>
    </message>
    <message>
        <source>Choose a tile and a manual rule first</source>
        <translation>Escolha primeiro um quadro e uma regra manual</translation>
    </message>
    <message>
        <source>%1 is not for this camera</source>
        <translation>%1 não é para esta câmera</translation>
    </message>
    <message>
        <source>Not fired: %1</source>
        <translation>Não disparada: %1</translation>
    </message>
    <message>
        <source>Not fired: disarmed, off schedule or cooling down</source>
        <translation>Não disparada: desarmada, fora do horário ou em espera</translation>
    </message>
    <message>
        <source>Comment (Enter: acknowledge, Shift+Enter: close)</source>
        <translation>Comentário (Enter: reconhecer, Shift+Enter: encerrar)</translation>
    </message>
    <message>
        <source>Not saved: %1</source>
        <translation>Não salvo: %1</translation>
    </message>
</context>
<context>
    <name>AlarmView</name>
    <message>
        <source>Live</source>
        <translation>Ao vivo</translation>
    </message>
    <message>
        <source>When it fired</source>
        <translation>No momento do alarme</translation>
    </message>
    <message>
        <source>Comment (Enter: acknowledge, Shift+Enter: close)</source>
        <translation>Comentário (Enter: reconhecer, Shift+Enter: encerrar)</translation>
    </message>
    <message>
        <source>Acknowledge</source>
        <translation>Reconhecer</translation>
    </message>
    <message>
        <source>Close alarm</source>
        <translation>Encerrar alarme</translation>
    </message>
    <message>
        <source>Not saved: %1</source>
        <translation>Não salvo: %1</translation>
    </message>
    <message>
        <source>Saved: %1</source>
        <translation>Salvo: %1</translation>
    </message>
    <message>
        <source>Alarm: %1</source>
        <translation>Alarme: %1</translation>
    </message>
</context>
</TS>
