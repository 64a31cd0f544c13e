# Autoland extension for Bugzilla: an "Autoland" section on the bug page (current
# patches, destinations, the bug's Autoland requests, a Land button) and the page that
# sends the Land request to Autoland, server-side, on behalf of the logged-in user.
# See README.md.

package Bugzilla::Extension::Autoland;

use 5.10.1;
use strict;
use warnings;

use parent qw(Bugzilla::Extension);

use Scalar::Util qw(blessed);

use Bugzilla::Bug ();
use Bugzilla::Constants;                    # LOGIN_REQUIRED
use Bugzilla::Token qw(check_hash_token);
use Bugzilla::Extension::Autoland::Client;

our $VERSION = '1.0';

use constant PAGE_ID         => 'autoland/land.html';
use constant STATUS_TIMEOUT  => 3;     # seconds at most for the status read on the bug page
use constant DEFAULT_TIMEOUT => 5;
use constant DESTINATION_RE  => qr/^([A-Za-z0-9._-]{1,64})\z/;
use constant MAX_TRY_SYNTAX  => 1000;

# The templates template_before_process is for, declared the way BMO's own BugModal
# extension declares its own (in case BMO uses it to skip the others). Upstream Bugzilla
# never calls it; it is not a hook there.
sub template_before_process_wants {
    return { 'bug/show.html.tmpl' => 1, 'bug/show-modal.html.tmpl' => 1 };
}

################################################################################
# Hooks
################################################################################

# The "Autoland" panel of Administration -> Parameters.
sub config_add_panels {
    my ($self, $args) = @_;
    $args->{panel_modules}->{Autoland} = 'Bugzilla::Extension::Autoland::Params';
}

# The bug page: bug/show.html.tmpl (Bugzilla 5.0-5.2, BMO's legacy view) or
# bug/show-modal.html.tmpl (BMO). Puts the section's data into "autoland_bug", which
# hook/global/footer-end.html.tmpl shows. Logged-in users only.
sub template_before_process {
    my ($self, $args) = @_;
    my ($vars, $file) = @$args{qw(vars file)};
    return unless $file eq 'bug/show.html.tmpl' || $file eq 'bug/show-modal.html.tmpl';
    return unless Bugzilla->user->id;
    return unless _autoland_url() ne '';

    my $bug = _the_bug($vars) or return;
    my $timeout = _timeout();
    $timeout = STATUS_TIMEOUT if $timeout > STATUS_TIMEOUT;

    my ($client, $status);
    eval {
        $client = Bugzilla::Extension::Autoland::Client->new(
            url     => _autoland_url(),
            timeout => $timeout,
        );
        $status = $client->bug_status($bug->id);
        1;
    } or do {
        my $error = $@ || 'unknown error';
        warn 'Autoland: status of bug ' . $bug->id . " not read: $error";
        $vars->{autoland_bug} = { bug_id => $bug->id, unreachable => 1 };
        return;
    };

    my %landed = map { $_ => 1 } grep { defined($_) && !ref($_) } @{ _list($status->{landed_attachments}) };
    my @patches = map {
        +{
            id          => $_->id,
            description => $_->description,
            creator     => $_->attacher->login,
            flags       => [ map { _flag_text($_) } grep { $_->name =~ /review|feedback/i } @{ $_->flags } ],
            landed      => $landed{ $_->id } ? 1 : 0,
        }
    } @{ _current_patches($bug) };

    my @destinations = map {
        +{
            name   => $_->{name},
            level  => _text($_->{level}),
            closed => $_->{closed} ? 1 : 0,
        }
    } grep { ref($_) eq 'HASH' && defined($_->{name}) && $_->{name} =~ DESTINATION_RE }
        @{ _list($status->{destinations}) };

    my @requests = map {
        +{
            id           => $_->{id},
            stage        => _text($_->{stage}),
            failure      => _text($_->{failure}),
            requester    => _text($_->{requester}),
            destinations => join(', ', grep { defined($_) && !ref($_) } @{ _list($_->{destinations}) }),
        }
    } grep { ref($_) eq 'HASH' && defined($_->{id}) && !ref($_->{id}) && $_->{id} =~ /^\d+\z/ }
        @{ _list($status->{requests}) };

    $vars->{autoland_bug} = {
        bug_id       => $bug->id,
        url          => $client->url,
        patches      => \@patches,
        destinations => \@destinations,
        requests     => \@requests,
    };
}

# page.cgi?id=autoland/land.html: the Land form's target. Checks everything, sends the
# request to Autoland and leaves the outcome in "autoland_land" for
# pages/autoland/land.html.tmpl.
sub page_before_template {
    my ($self, $args) = @_;
    return unless $args->{page_id} eq PAGE_ID;

    my $user   = Bugzilla->login(LOGIN_REQUIRED);
    my $cgi    = Bugzilla->cgi;
    my $result = {};
    $args->{vars}->{autoland_land} = $result;

    return _refuse($result, 'Use the Land button on the bug page to send a request.')
        unless ($cgi->request_method || '') eq 'POST';

    my ($bug_id) = _param($cgi, 'bug_id') =~ /^(\d{1,10})\z/;
    return _refuse($result, 'The bug id is missing or is not a number.') unless $bug_id;
    $result->{bug_id} = $bug_id;

    # Bugzilla's CSRF check; it shows its own page (and stops) when the token is wrong.
    check_hash_token(_param($cgi, 'token'), ['autoland', $bug_id]);

    # Stops with Bugzilla's error page unless the bug exists and the user may see it.
    my $bug = Bugzilla::Bug->check($bug_id);

    # Patches: current (non-obsolete) patches of this bug that the user can see.
    my %current = map { $_->id => 1 } @{ _current_patches($bug) };
    my (@attachments, %seen_attachment);
    foreach my $value (_multi_param($cgi, 'attachment')) {
        my ($id) = (defined $value ? $value : '') =~ /^(\d{1,10})\z/;
        return _refuse($result, 'An attachment id is not a number.') unless $id;
        return _refuse($result, "Attachment $id is not a current patch of bug $bug_id.")
            unless $current{$id};
        push(@attachments, $id) unless $seen_attachment{$id}++;
    }
    return _refuse($result, 'Choose at least one patch.') unless @attachments;
    @attachments = sort { $a <=> $b } @attachments;

    my (@destinations, %seen_destination);
    foreach my $value (_multi_param($cgi, 'destination')) {
        my ($name) = (defined $value ? $value : '') =~ DESTINATION_RE;
        return _refuse($result, 'A destination name is not valid.') unless defined $name;
        push(@destinations, $name) unless $seen_destination{$name}++;
    }
    return _refuse($result, 'Choose at least one destination.') unless @destinations;

    my $try_syntax = _param($cgi, 'try_syntax');
    $try_syntax =~ s/^\s+|\s+\z//g;
    if ($try_syntax ne '') {
        return _refuse($result, 'The try syntax must be one line of at most '
                . MAX_TRY_SYNTAX . ' characters.')
            if length($try_syntax) > MAX_TRY_SYNTAX || $try_syntax =~ /[\x00-\x1f\x7f-\x9f]/;
        return _refuse($result, q{The try syntax must start with "-" (e.g. -b o -p all).})
            unless $try_syntax =~ /^(-.*)\z/s;
        $try_syntax = $1;
    }

    return _refuse($result, 'Autoland is not configured on this Bugzilla.')
        if _autoland_url() eq '';

    my ($client, $answer);
    eval {
        $client = Bugzilla::Extension::Autoland::Client->new(
            url     => _autoland_url(),
            token   => Bugzilla->params->{autoland_token},
            timeout => _timeout(),
        );
        $answer = $client->submit(
            bug          => $bug_id,
            attachments  => \@attachments,
            destinations => \@destinations,
            try_syntax   => $try_syntax,
            # Always the logged-in user: Bugzilla vouches for them, never the form.
            requester    => $user->login,
        );
        1;
    } or do {
        my $error = $@ || 'unknown error';
        chomp($error);
        return _refuse($result, $error);
    };

    $result->{url}     = $client->url;
    $result->{request} = { id => $answer->{id}, stage => _text($answer->{stage}) };
}

################################################################################
# Helpers (names start with "_": BMO takes every other sub of this package for a hook)
################################################################################

sub _autoland_url {
    my $url = Bugzilla->params->{autoland_url};
    return defined $url ? $url : '';
}

sub _timeout {
    my $timeout = Bugzilla->params->{autoland_timeout};
    return defined $timeout && $timeout =~ /^\d+\z/ && $timeout > 0 ? $timeout : DEFAULT_TIMEOUT;
}

# The one bug of the bug page, or nothing.
sub _the_bug {
    my ($vars) = @_;
    my $bugs = $vars->{bugs};
    my $bug = ref($bugs) eq 'ARRAY' && @$bugs == 1 ? $bugs->[0] : $vars->{bug};
    return undef unless blessed($bug) && !$bug->{error};
    return $bug;
}

# The bug's current patches (not obsolete, not private), in attachment order. Autoland
# refuses private attachments (what it lands is shown on its pages), so they are not
# offered; Bug->attachments holds only those the user may see anyway.
sub _current_patches {
    my ($bug) = @_;
    return [ sort { $a->id <=> $b->id }
             grep { $_->ispatch && !$_->isobsolete && !$_->isprivate } @{ $bug->attachments } ];
}

# "review+ (bob@example.com)": the setter, or the requestee of a request ("review?").
sub _flag_text {
    my ($flag) = @_;
    my $who = $flag->status eq '?' && $flag->requestee ? $flag->requestee : $flag->setter;
    return $flag->name . $flag->status . ($who ? ' (' . $who->login . ')' : '');
}

sub _param {
    my ($cgi, $name) = @_;
    my $value = scalar $cgi->param($name);
    return defined $value ? $value : '';
}

# All values of a repeated form field (multi_param on newer CGI.pm, param on older).
sub _multi_param {
    my ($cgi, $name) = @_;
    return $cgi->can('multi_param') ? $cgi->multi_param($name) : $cgi->param($name);
}

sub _list { return ref($_[0]) eq 'ARRAY' ? $_[0] : [] }

sub _text { return defined($_[0]) && !ref($_[0]) ? $_[0] : '' }

sub _refuse {
    my ($result, $message) = @_;
    $result->{error} = $message;
    return;
}

__PACKAGE__->NAME;
