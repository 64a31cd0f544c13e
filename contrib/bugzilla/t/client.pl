#!/usr/bin/env perl
# Runs the extension's Client.pm (extensions/Autoland/lib/Client.pm) for real against a
# running Autoland, so that a test can check both ends of the contract. Core Perl only.
#
#   client.pl [--attachments 1001,1003] [--try-syntax "-b o -p all"] [--timeout SECONDS]
#             BASE_URL TOKEN BUG REQUESTER [DESTINATION...]
#       bug_status(BUG), then submit(BUG, attachments, destinations, try syntax,
#       REQUESTER); prints {"status": <bug status>, "submitted": <new request>}.
#       No --attachments: every current patch; no DESTINATION: Autoland's default.
#
#   client.pl --bad-token BASE_URL BUG
#       submit() for BUG with the token "wrong" (requester nobody@example.com); prints
#       the error it got, {"error": "..."}, to show the token is not echoed.
#
# Output is one JSON object on stdout. Exit codes: 0 done, 2 Client.pm died (the output
# is {"error": "<its message>"}), 1 bad command line (usage on stderr).

use 5.10.1;
use strict;
use warnings;

use FindBin;
use Getopt::Long qw(GetOptionsFromArray);
use JSON::PP ();

# Bugzilla finds this module as Bugzilla::Extension::Autoland::Client; here it is loaded
# by its path (at compile time, so that `perl -c` checks it is there).
BEGIN { require "$FindBin::Bin/../extensions/Autoland/lib/Client.pm" }

my $json = JSON::PP->new->utf8->canonical;

sub usage {
    print STDERR "usage: $0 [--attachments IDS] [--try-syntax TEXT] [--timeout SECONDS]"
        . " BASE_URL TOKEN BUG REQUESTER [DESTINATION...]\n"
        . "       $0 --bad-token BASE_URL BUG\n";
    exit 1;
}

sub finish {
    my ($code, $output) = @_;
    print $json->encode($output), "\n";
    exit $code;
}

my @args = @ARGV;
my %opt  = (timeout => 10);
GetOptionsFromArray(\@args, \%opt, 'attachments=s', 'try-syntax=s', 'timeout=i', 'bad-token')
    or usage();

my $output = eval {
    if ($opt{'bad-token'}) {
        usage() unless @args == 2;
        my ($url, $bug) = @args;
        my $client = Bugzilla::Extension::Autoland::Client->new(
            url => $url, token => 'wrong', timeout => $opt{timeout});
        my $submitted = $client->submit(
            bug => $bug, attachments => [], destinations => [],
            requester => 'nobody@example.com');
        return { submitted => $submitted };
    }

    usage() unless @args >= 4;
    my ($url, $token, $bug, $requester, @destinations) = @args;
    my @attachments = grep { $_ ne '' } split(/,/, defined $opt{attachments} ? $opt{attachments} : '');
    my $client = Bugzilla::Extension::Autoland::Client->new(
        url => $url, token => $token, timeout => $opt{timeout});
    my $status    = $client->bug_status($bug);
    my $submitted = $client->submit(
        bug          => $bug,
        attachments  => \@attachments,
        destinations => \@destinations,
        try_syntax   => $opt{'try-syntax'},
        requester    => $requester,
    );
    return { status => $status, submitted => $submitted };
};

if (!$output) {
    my $error = $@ || 'unknown error';
    chomp($error);
    finish(2, { error => $error });
}
finish(0, $output);
